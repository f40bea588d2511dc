"""SPP: spatial pyramid pooling over the two spatial axes of 4-D blobs.

Math: for pyramid level ``l = 0 .. pyramid_height - 1`` the map is pooled into
``b = 2^l`` by ``b`` bins with Caffe's Pooling semantics, per spatial axis of
extent ``in``: ``kernel = ceil(in / b)``, ``pad = (kernel * b - in + 1) // 2``,
``stride = kernel``. Each level's pooled ``(N, C, PH, PW)`` is flattened to
``(N, C * PH * PW)`` and the levels are concatenated along axis 1 (normally
``PH = PW = b``, so the top has ``C * sum_l 4^l`` features). As in Caffe, with
``pyramid_height: 1`` the top is the single (global) level's pooling output
``(N, C, 1, 1)``, not flattened.

Bottoms: ``(N, C, H, W)``.
Tops: ``(N, C * sum_l PH_l * PW_l)``; ``(N, C, 1, 1)`` for pyramid_height 1.
Learnable params: none.
Proto fields: spp_param { pyramid_height pool } (MAX or AVE; engine ignored).
Gradients: to the bottom, through the internal Pooling layers (summed over the
levels).
"""

from __future__ import annotations

from recaffe.blob import Blob
from recaffe.errors import RecaffeError, ShapeError
from recaffe.layer import Layer, register_layer
from recaffe.layers.pooling import PoolingLayer
from recaffe.proto import caffe_pb2

SPP = caffe_pb2.SPPParameter
PP = caffe_pb2.PoolingParameter
_POOL = {SPP.MAX: PP.MAX, SPP.AVE: PP.AVE}


def level_geometry(size: int, level: int) -> tuple[int, int]:
    """``(kernel, pad)`` along one axis of extent ``size`` at pyramid ``level``."""
    bins = 2**level
    kernel = -(-size // bins)
    pad = (kernel * bins - size + 1) // 2
    return kernel, pad


@register_layer
class SPPLayer(Layer):
    type = "SPP"
    exact_num_bottom = 1
    exact_num_top = 1

    def setup(self, bottom, top):
        p = self.layer_param.spp_param
        self.height = int(p.pyramid_height)
        if self.height < 1:
            raise self.error(
                f"spp_param.pyramid_height must be >= 1, got {p.pyramid_height}"
            )
        if int(p.pool) == SPP.STOCHASTIC:
            raise self.error(
                "spp_param.pool STOCHASTIC is not supported; use MAX or AVE"
            )
        if int(p.pool) not in _POOL:
            raise self.error(f"unknown spp_param.pool {p.pool}")
        self.pool = _POOL[int(p.pool)]
        self._hw = None

    def _pooling_param(self, level: int, h: int, w: int):
        kh, ph = level_geometry(h, level)
        kw, pw = level_geometry(w, level)
        if ph >= kh or pw >= kw:
            raise self.error(
                f"bottom[0] spatial size {(h, w)} is too small for pyramid level "
                f"{level} ({2**level} x {2**level} bins): it needs pad "
                f"{(ph, pw)} < kernel {(kh, kw)}; lower pyramid_height",
                ShapeError,
            )
        lp = caffe_pb2.LayerParameter()
        lp.name = f"{self.name}_pool{level}"
        lp.type = "Pooling"
        lp.phase = self.phase
        pp = lp.pooling_param
        pp.pool = self.pool
        pp.kernel_h, pp.kernel_w = kh, kw
        pp.pad_h, pp.pad_w = ph, pw
        pp.stride_h, pp.stride_w = kh, kw
        return lp

    def _build(self, bottom):
        """Internal Pooling layers for the current spatial size (as Caffe redoes
        its setup when the bottom's shape changes)."""
        x = bottom[0]
        dtype = x.data.dtype
        h, w = x.shape[2:]
        self._pools = []
        self._ins = []
        self._outs = []
        for level in range(self.height):
            layer = PoolingLayer(self._pooling_param(level, h, w), self.phase)
            inner = Blob(x.shape, dtype=dtype)
            inner.share_data(x)
            out = Blob((), dtype=dtype)
            try:
                layer.SetUp([inner], [out])
            except RecaffeError as e:
                raise self.error(f"pyramid level {level}: {e}", type(e)) from e
            self._pools.append(layer)
            self._ins.append(inner)
            self._outs.append(out)
        self._hw = (h, w)

    def reshape(self, bottom, top):
        x = bottom[0]
        if x.num_axes != 4:
            raise self.error(
                f"bottom[0] must have 4 axes (N, C, H, W), got shape {x.shape}",
                ShapeError,
            )
        if (x.shape[2:] != self._hw or not self._ins
                or self._ins[0].dtype != x.data.dtype):
            self._build(bottom)
        for layer, inner, out in zip(self._pools, self._ins, self._outs,
                                     strict=True):
            inner.reshape(x.shape)
            inner.share_data(x)
            layer.reshape([inner], [out])
        if self.height == 1:
            top[0].reshape(self._outs[0].shape)
        else:
            width = sum(o.count_range(1) for o in self._outs)
            top[0].reshape((x.shape[0], width))

    def forward(self, bottom, top):
        y = top[0].data
        n = y.shape[0]
        off = 0
        for layer, inner, out in zip(self._pools, self._ins, self._outs,
                                     strict=True):
            layer.forward([inner], [out])
            k = out.count_range(1)
            y.reshape(n, -1)[:, off:off + k] = out.data.reshape(n, k)
            off += k

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy = top[0].diff
        n = dy.shape[0]
        dx = bottom[0].diff
        off = 0
        for level, (layer, inner, out) in enumerate(
                zip(self._pools, self._ins, self._outs, strict=True)):
            k = out.count_range(1)
            out.diff.reshape(n, k)[...] = dy.reshape(n, -1)[:, off:off + k]
            off += k
            layer.backward([out], [True], [inner])
            if level == 0:
                dx[...] = inner.diff
            else:
                dx += inner.diff
