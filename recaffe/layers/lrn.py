"""LRN: local response normalisation, across channels or within each channel.

Math (``n = local_size``, odd; ``r = (n - 1) / 2``):

- ACROSS_CHANNELS: ``scale[c] = k + alpha / n * sum_{c' = c - r}^{c + r} x[c']^2``
  (channels outside ``[0, C)`` count as 0), ``y = x * scale^-beta``.
  ``dx[c] = dy[c] scale[c]^-beta - 2 alpha beta / n * x[c]
  * sum_{c' = c - r}^{c + r} dy[c'] y[c'] / scale[c']``.
- WITHIN_CHANNEL: ``s = 1 + alpha * avg(x^2)`` where ``avg`` is Caffe's AVE pooling
  of an ``n x n`` window, stride 1, pad ``r`` (zero padding counted, so the
  divisor is always ``n^2``); ``y = x * s^-beta``. (Caffe builds this from
  Split, Power, Pooling, Power and Eltwise layers; the result is the same.)

Bottoms: ``(N, C, H, W)``.
Tops: same shape.
Learnable params: none.
Proto fields: lrn_param { local_size alpha beta norm_region k } (engine ignored).
Gradients: to the bottom.
"""

from __future__ import annotations

from recaffe.errors import ShapeError
from recaffe.layer import Layer, register_layer
from recaffe.proto import caffe_pb2

LP = caffe_pb2.LRNParameter


@register_layer
class LRNLayer(Layer):
    type = "LRN"
    exact_num_bottom = 1
    exact_num_top = 1

    def setup(self, bottom, top):
        p = self.layer_param.lrn_param
        self.size = int(p.local_size)
        if self.size <= 0 or self.size % 2 == 0:
            raise self.error(
                f"local_size must be a positive odd number, got {p.local_size}"
            )
        self.pre_pad = (self.size - 1) // 2
        self.alpha = float(p.alpha)
        self.beta = float(p.beta)
        self.k = float(p.k)
        self.region = int(p.norm_region)
        if self.region not in (LP.ACROSS_CHANNELS, LP.WITHIN_CHANNEL):
            raise self.error(f"unknown norm_region {p.norm_region}")
        self._pads: dict = {}

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        if len(shape) != 4:
            raise self.error(
                f"bottom[0] must have 4 axes (N, C, H, W), got shape {shape}",
                ShapeError,
            )
        top[0].reshape(shape)

    # -- window sums --------------------------------------------------------------
    def _padded(self, shape, axes, dtype):
        """A zeroed buffer ``shape`` padded by ``pre_pad`` on ``axes``."""
        pshape = list(shape)
        for a in axes:
            pshape[a] += 2 * self.pre_pad
        key = (tuple(pshape), dtype)
        buf = self._pads.get(key)
        if buf is None:
            buf = self._pads[key] = self.xp.zeros(tuple(pshape), dtype=dtype)
        return buf

    def _window_sum(self, a, axes):
        """Zero-padded centred box sum of width ``local_size`` along ``axes``."""
        xp = self.xp
        r = self.pre_pad
        out = a
        for ax in axes:
            buf = self._padded(out.shape, (ax,), out.dtype)
            inner = [slice(None)] * out.ndim
            inner[ax] = slice(r, r + out.shape[ax])
            buf[tuple(inner)] = out
            acc = xp.zeros(out.shape, dtype=out.dtype)
            n = out.shape[ax]
            for j in range(self.size):
                sl = [slice(None)] * out.ndim
                sl[ax] = slice(j, j + n)
                acc += buf[tuple(sl)]
            out = acc
        return out

    def _axes(self):
        return (1,) if self.region == LP.ACROSS_CHANNELS else (2, 3)

    def _scale(self, x):
        """The denominator base: ``k + alpha/n sum x^2`` or ``1 + alpha avg x^2``."""
        s = self._window_sum(x * x, self._axes())
        if self.region == LP.ACROSS_CHANNELS:
            s *= self.alpha / self.size
            s += self.k
        else:
            s *= self.alpha / (self.size * self.size)
            s += 1.0
        return s

    def forward(self, bottom, top):
        xp = self.xp
        x = bottom[0].data
        self.scale = self._scale(x)
        xp.multiply(x, self.scale ** -self.beta, out=top[0].data)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        x = bottom[0].data
        y = top[0].data
        dy = top[0].diff
        scale = self.scale
        ratio = self._window_sum(dy * y / scale, self._axes())
        if self.region == LP.ACROSS_CHANNELS:
            coeff = 2.0 * self.alpha * self.beta / self.size
        else:
            coeff = 2.0 * self.alpha * self.beta / (self.size * self.size)
        dx = bottom[0].diff
        dx[...] = dy * scale ** -self.beta
        dx -= coeff * x * ratio
