"""Pooling: MAX, AVE or STOCHASTIC pooling over the two spatial axes of 4-D blobs.

Math (per axis, ``pad`` p, ``kernel`` k, ``stride`` s, input extent ``in``):
``pooled = ceil((in + 2p - k) / s) + 1`` (``floor`` with ``round_mode: FLOOR``);
when padded, a last window starting at or after ``in + p`` is dropped
(``if (pooled - 1) s >= in + p: pooled -= 1``). Window ``o`` starts at
``o s - p``.

- MAX: the largest input in the window (padding never wins); ties go to the
  first maximum in row-major order. Optional second top: the argmax as the
  index ``h * W + w`` into the input map (float). Backward routes the gradient to
  the argmax.
- AVE: the sum of the in-image inputs divided by the window area clipped to the
  padded bounds ``[-p, in + p)`` (padding counts, overhang past it does not).
- STOCHASTIC (inputs must be >= 0): TRAIN picks one input of the window with
  probability proportional to its value (gradient routed to it); TEST outputs
  ``sum(x^2) / sum(x)`` over the window (0 when the sum is 0); no padding.
- ``global_pooling``: the window is the whole map (pad 0, stride 1).

Bottoms: ``(N, C, H, W)``.
Tops: ``(N, C, PH, PW)``; MAX may have a second top of the same shape (mask).
Learnable params: none.
Proto fields: pooling_param { pool pad pad_h pad_w kernel_size kernel_h kernel_w
stride stride_h stride_w global_pooling round_mode } (engine ignored).
Gradients: to the bottom (none to or through the mask top).
"""

from __future__ import annotations

import numpy as np

from recaffe import backend
from recaffe.errors import ShapeError
from recaffe.layer import Layer, register_layer
from recaffe.layers.conv_util import Im2col
from recaffe.proto import caffe_pb2

PP = caffe_pb2.PoolingParameter
FLT_MAX = float(np.finfo(np.float32).max)


def pooled_size(size: int, kernel: int, pad: int, stride: int, ceil_mode: bool) -> int:
    """Caffe's pooled extent, including the "last window inside" correction."""
    span = size + 2 * pad - kernel
    out = -(-span // stride) + 1 if ceil_mode else span // stride + 1
    if pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out


@register_layer
class PoolingLayer(Layer):
    type = "Pooling"
    exact_num_bottom = 1
    min_top = 1
    max_top = 2

    def setup(self, bottom, top):
        p = self.layer_param.pooling_param
        self.method = int(p.pool)
        if self.method not in (PP.MAX, PP.AVE, PP.STOCHASTIC):
            raise self.error(f"unknown pool method {p.pool}")
        if len(top) > 1 and self.method != PP.MAX:
            raise self.error(
                f"only MAX pooling can have a second (mask) top, got {len(top)} tops"
            )
        self.global_pooling = bool(p.global_pooling)
        has_ks = p.HasField("kernel_size")
        has_kh, has_kw = p.HasField("kernel_h"), p.HasField("kernel_w")
        if self.global_pooling:
            if has_ks or has_kh or has_kw:
                raise self.error(
                    "with global_pooling: true the kernel size cannot be specified"
                )
        else:
            if has_ks and (has_kh or has_kw):
                raise self.error(
                    "give either kernel_size or kernel_h and kernel_w, not both"
                )
            if not has_ks and not (has_kh and has_kw):
                raise self.error(
                    "kernel size is required: set kernel_size, or both kernel_h and "
                    "kernel_w"
                )
        if p.HasField("pad") and (p.HasField("pad_h") or p.HasField("pad_w")):
            raise self.error("give either pad or pad_h and pad_w, not both")
        if p.HasField("pad_h") != p.HasField("pad_w"):
            raise self.error("pad_h and pad_w must be given together")
        if p.HasField("stride") and (p.HasField("stride_h") or p.HasField("stride_w")):
            raise self.error("give either stride or stride_h and stride_w, not both")
        if p.HasField("stride_h") != p.HasField("stride_w"):
            raise self.error("stride_h and stride_w must be given together")
        if p.HasField("pad_h"):
            self.pad = (int(p.pad_h), int(p.pad_w))
        else:
            self.pad = (int(p.pad), int(p.pad))
        if p.HasField("stride_h"):
            self.stride = (int(p.stride_h), int(p.stride_w))
        else:
            self.stride = (int(p.stride), int(p.stride))
        if any(s <= 0 for s in self.stride):
            raise self.error(f"stride must be > 0, got {self.stride}")
        if self.global_pooling:
            if self.pad != (0, 0) or self.stride != (1, 1):
                raise self.error(
                    "with global_pooling: true only pad = 0 and stride = 1 are allowed"
                )
            self.kernel = None
        else:
            if has_ks:
                self.kernel = (int(p.kernel_size), int(p.kernel_size))
            else:
                self.kernel = (int(p.kernel_h), int(p.kernel_w))
            if any(k <= 0 for k in self.kernel):
                raise self.error(f"kernel size must be > 0, got {self.kernel}")
            if self.pad != (0, 0):
                if self.method not in (PP.MAX, PP.AVE):
                    raise self.error(
                        "padding is implemented only for MAX and AVE pooling"
                    )
                if self.pad[0] >= self.kernel[0] or self.pad[1] >= self.kernel[1]:
                    raise self.error(
                        f"pad {self.pad} must be smaller than the kernel {self.kernel}"
                    )
        self.ceil_mode = int(p.round_mode) == PP.CEIL
        self._key = None

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        if len(shape) != 4:
            raise self.error(
                f"bottom[0] must have 4 axes (N, C, H, W), got shape {shape}",
                ShapeError,
            )
        n, c, h, w = shape
        kernel = (h, w) if self.global_pooling else self.kernel
        pooled = tuple(
            pooled_size(i, k, p, s, self.ceil_mode)
            for i, k, p, s in zip((h, w), kernel, self.pad, self.stride, strict=True)
        )
        if any(o <= 0 for o in pooled):
            raise self.error(
                f"kernel {kernel} is larger than the padded input "
                f"{(h + 2 * self.pad[0], w + 2 * self.pad[1])} (pooled shape {pooled})",
                ShapeError,
            )
        for t in top:
            t.reshape((n, c) + pooled)
        dtype = bottom[0].data.dtype
        key = (shape, dtype)
        if key != self._key:
            self._key = key
            self._build(shape, kernel, pooled, dtype)

    def _build(self, shape, kernel, pooled, dtype):
        """Per-shape index tables: the window plan, divisors, empty windows."""
        xp = self.xp
        _, _, h, w = shape
        self.kernel_now = kernel
        self.pooled = pooled
        fill = -np.inf if self.method == PP.MAX else 0.0
        self.plan = Im2col(xp, shape, dtype, kernel, self.stride, (1, 1), self.pad,
                           out_shape=pooled, fill=fill)
        starts = [np.arange(o) * s - p
                  for o, s, p in zip(pooled, self.stride, self.pad, strict=True)]
        # Window extents clipped to the padded bounds (AVE divisor) and to the
        # image (empty-window detection).
        clip_pad = [
            np.minimum(st + k, i + p) - st
            for st, k, i, p in zip(starts, kernel, (h, w), self.pad, strict=True)
        ]
        inside = [np.minimum(st + k, i) - np.maximum(st, 0)
                  for st, k, i in zip(starts, kernel, (h, w), strict=True)]
        area = np.outer(clip_pad[0], clip_pad[1]).astype(np.float64)
        # Caffe divides by this area; a window entirely past the image with no
        # padding has area <= 0 there (0/0); such windows output 0 here.
        area[area == 0] = 1.0
        self.inv_area = backend.to_device((1.0 / area).astype(dtype), xp)
        self.empty = np.logical_or.outer(inside[0] <= 0, inside[1] <= 0)
        self.any_empty = bool(self.empty.any())
        self.empty_dev = backend.to_device(self.empty, xp)
        # Mask index = window start (h * W + w) + offset of the tap in the map.
        base = np.add.outer(starts[0] * w, starts[1])
        kh, kw = kernel
        off = (np.arange(kh)[:, None] * w + np.arange(kw)[None, :]).reshape(-1)
        self.mask_base = backend.to_device(base.astype(np.int64), xp)
        self.mask_off = backend.to_device(off.astype(np.int64), xp)
        self.K = kh * kw
        self._col = None
        self.argmax = None

    def _cols(self, x):
        """Windows of ``x`` as a contiguous ``(N, C, PH, PW, K)`` array."""
        xp = self.xp
        win = self.plan.windows(x)  # (N, C, kh, kw, PH, PW)
        n, c = x.shape[:2]
        if self._col is None:
            self._col = xp.empty((n, c) + self.pooled + self.kernel_now, dtype=x.dtype)
        self._col[...] = win.transpose(0, 1, 4, 5, 2, 3)
        return self._col.reshape((n, c) + self.pooled + (self.K,))

    # -- forward ----------------------------------------------------------------
    def forward(self, bottom, top):
        if self.method == PP.MAX:
            self._forward_max(bottom, top)
        elif self.method == PP.AVE:
            self._forward_ave(bottom, top)
        else:
            self._forward_stochastic(bottom, top)

    def _forward_max(self, bottom, top):
        # A running maximum over the kernel taps: a strict ">" keeps the first
        # maximum in row-major window order, as Caffe's scan does.
        xp = self.xp
        win = self.plan.windows(bottom[0].data)  # (N, C, kh, kw, PH, PW)
        y = top[0].data
        idx = self.argmax
        if idx is None or idx.shape != y.shape:
            idx = self.argmax = xp.zeros(y.shape, dtype=xp.int32)
        else:
            idx.fill(0)
        y[...] = win[:, :, 0, 0]
        for k, (i, j) in enumerate(self.plan.offsets[1:], 1):
            v = win[:, :, i, j]
            gt = v > y
            xp.maximum(y, v, out=y)
            idx[gt] = k
        if self.any_empty:
            y[...] = xp.where(self.empty_dev, y.dtype.type(-FLT_MAX), y)
        if len(top) > 1:
            mask = self.mask_base + self.mask_off[idx]
            if self.any_empty:
                mask = xp.where(self.empty_dev, -1, mask)
            top[1].data[...] = mask

    def _forward_ave(self, bottom, top):
        win = self.plan.windows(bottom[0].data)  # (N, C, kh, kw, PH, PW)
        y = top[0].data
        y[...] = win[:, :, 0, 0]
        for i, j in self.plan.offsets[1:]:
            y += win[:, :, i, j]
        y *= self.inv_area

    def _forward_stochastic(self, bottom, top):
        xp = self.xp
        cols = self._cols(bottom[0].data)
        if self.phase == caffe_pb2.TRAIN:
            cs = xp.cumsum(cols, axis=-1)
            u = backend.random_uniform(cs.shape[:-1], 0.0, 1.0, cols.dtype)
            thres = u * cs[..., -1]
            idx = xp.argmax(cs >= thres[..., None], axis=-1)
            self.argmax = idx
            top[0].data[...] = xp.take_along_axis(cols, idx[..., None], axis=-1)[..., 0]
        else:
            s = cols.sum(axis=-1)
            sq = (cols * cols).sum(axis=-1)
            pos = s > 0
            top[0].data[...] = xp.where(pos, sq / xp.where(pos, s, 1), 0)
            self.argmax = None

    # -- backward ---------------------------------------------------------------
    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy = top[0].diff
        dx = bottom[0].diff
        xp = self.xp
        if self.method == PP.AVE:
            dys = dy * self.inv_area
            self.plan.accumulate(lambda i, off: dys, dx)
            return
        idx = self.argmax
        if idx is None:
            # STOCHASTIC in TEST samples nothing; Caffe defines no gradient there.
            dx[...] = 0
            return
        if self.method == PP.MAX and self.any_empty:
            dy = xp.where(self.empty_dev, 0, dy)
        zero = xp.zeros((), dtype=dy.dtype)
        self.plan.accumulate(lambda i, off: xp.where(idx == i, dy, zero), dx)

