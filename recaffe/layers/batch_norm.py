"""BatchNorm: normalize each channel (axis 1) to zero mean and unit variance.

Math (per channel c, statistics over axis 0 and the spatial axes, m = their size):
- batch statistics (``use_global_stats: false``): ``mu = mean(x)``,
  ``var = mean((x - mu)^2)``, ``y = (x - mu) / sqrt(var + eps)``, and the stored
  sums are updated: ``s <- maf * s + 1``, ``mean_sum <- mu + maf * mean_sum``,
  ``var_sum <- m / (m - 1) * var + maf * var_sum`` (``m / (m - 1)`` is 1 when
  m == 1); ``maf`` = moving_average_fraction.
  ``dx = (dy - mean(dy) - y * mean(dy * y)) / sqrt(var + eps)``.
- global statistics (``use_global_stats: true``): ``mu = mean_sum / s``,
  ``var = var_sum / s`` (both 0 when ``s == 0``), ``y = (x - mu) / sqrt(var + eps)``,
  ``dx = dy / sqrt(var + eps)``.

Bottoms: ``x`` of shape (N, C, ...) (a 1-axis bottom is one channel).
Tops: ``y``, same shape (may be in place).
Blobs (not learned): ``mean_sum`` (C,), ``var_sum`` (C,), ``scale_factor`` (1,),
created zero. They get ``lr_mult: 0`` (param specs are added to this layer's
parameter when absent, as Caffe does) and never receive a diff.
Proto fields: batch_norm_param { use_global_stats (absent => true in TEST,
false in TRAIN) moving_average_fraction eps }.
Gradients: to the bottom.
"""

from __future__ import annotations

from recaffe.errors import ShapeError
from recaffe.layer import Layer, register_layer
from recaffe.proto import caffe_pb2


@register_layer
class BatchNormLayer(Layer):
    type = "BatchNorm"
    exact_num_bottom = 1
    exact_num_top = 1

    _xnorm = None
    _inv_std = None

    def setup(self, bottom, top):
        p = self.layer_param.batch_norm_param
        self.maf = float(p.moving_average_fraction)
        self.eps = float(p.eps)
        if p.HasField("use_global_stats"):
            self.use_global_stats = bool(p.use_global_stats)
        else:
            self.use_global_stats = self.phase == caffe_pb2.TEST
        self.channels = 1 if bottom[0].num_axes == 1 else self._channels(bottom[0])
        if not self.blobs:
            self.make_param_blob((self.channels,))
            self.make_param_blob((self.channels,))
            self.make_param_blob((1,))
        # The statistics are not parameters: lr_mult 0 on each, as Caffe does.
        lp = self.layer_param
        for i in range(3):
            if i == len(lp.param):
                lp.param.add(lr_mult=0.0)
            elif lp.param[i].lr_mult != 0:
                raise self.error(
                    f"param[{i}] has lr_mult {lp.param[i].lr_mult}: the batch "
                    "statistics cannot be configured as learnable parameters"
                )
        self.param_propagate_down = [False, False, False]

    def _channels(self, b) -> int:
        if b.num_axes < 1:
            raise self.error(f"bottom[0] needs at least 1 axis, got shape {b.shape}",
                             ShapeError)
        return b.shape[1]

    def reshape(self, bottom, top):
        b = bottom[0]
        c = 1 if b.num_axes == 1 else self._channels(b)
        if c != self.channels:
            raise self.error(
                f"bottom[0] must have {self.channels} channels (axis 1), got shape "
                f"{b.shape}",
                ShapeError,
            )
        if top[0] is not b:
            top[0].reshape(b.shape)

    def _view(self, a):
        """``a`` as (N, C, S)."""
        if a.ndim == 1:
            return a.reshape(a.shape[0], 1, 1)
        return a.reshape(a.shape[0], a.shape[1], -1)

    def forward(self, bottom, top):
        xp = self.xp
        x = self._view(bottom[0].data)
        y = self._view(top[0].data)
        if self.use_global_stats:
            s = float(self.blobs[2].data.reshape(-1)[0])
            factor = 0.0 if s == 0 else 1.0 / s
            mean = self.blobs[0].data * factor
            var = self.blobs[1].data * factor
        else:
            mean = x.mean(axis=(0, 2))
            var = ((x - mean[None, :, None]) ** 2).mean(axis=(0, 2))
            m = x.shape[0] * x.shape[2]
            correction = m / (m - 1) if m > 1 else 1.0
            maf = self.maf
            b0, b1, b2 = (blob.data for blob in self.blobs)
            b2 *= maf
            b2 += 1
            b0 *= maf
            b0 += mean
            b1 *= maf
            b1 += correction * var
        inv_std = 1.0 / xp.sqrt(var + self.eps)
        xp.subtract(x, mean[None, :, None], out=y)
        y *= inv_std[None, :, None]
        self._inv_std = inv_std
        if not self.use_global_stats:
            # Backward needs y; the top may be overwritten in place by a later
            # layer, so keep a copy.
            buf = self._xnorm
            if buf is None or buf.shape != y.shape or buf.dtype != y.dtype:
                buf = self._xnorm = xp.empty_like(y)
            buf[...] = y

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        xp = self.xp
        dy = self._view(top[0].diff)
        dx = self._view(bottom[0].diff)
        inv_std = self._inv_std[None, :, None]
        if self.use_global_stats:
            xp.multiply(dy, inv_std, out=dx)
            return
        y = self._xnorm
        mean_dy = dy.mean(axis=(0, 2), keepdims=True)
        mean_dyy = (dy * y).mean(axis=(0, 2), keepdims=True)
        t = y * mean_dyy
        t += mean_dy
        xp.subtract(dy, t, out=dx)
        dx *= inv_std
