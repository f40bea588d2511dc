"""Softmax along one axis.

Math: ``y = exp(x - max(x)) / sum(exp(x - max(x)))`` along ``axis`` (subtracting
the max keeps it finite); ``dx = y * (dy - sum(dy * y))`` along ``axis``.

Bottoms: ``x`` of any shape. Tops: ``y``, same shape (may be in place).
Learnable params: none. Proto fields: softmax_param { axis engine } (engine
ignored).
Gradients: to the bottom, from the top data.

:func:`softmax` and :func:`softmax_dot` are shared with the losses that hold
a softmax. When only axes of one element follow ``axis`` (a language model's
(T, N, V) scores, a classifier's (N, C)), numpy arrays are taken as rows:
the row maxima come from ``np.maximum.reduceat`` and the row sums from a GEMV
against ones, as in Caffe's CPU softmax. numpy's reductions along short
contiguous rows pay a call per row (3200 rows of 65: max 143 -> 62 us, sum
88 -> 15 us).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from recaffe.backend import is_device_array
from recaffe.layer import Layer, register_layer


def _rows(a, axis: int):
    """``a`` as (rows, C) without a copy, C its ``axis``, when only axes of
    one element follow that axis; else None (also for an empty array or one
    that is not a C-contiguous host array: device arrays keep the axis
    reductions)."""
    if is_device_array(a) or not a.flags.c_contiguous or a.size == 0:
        return None
    c = a.shape[axis]
    if a.size != c * math.prod(a.shape[:axis]):
        return None
    return a.view(np.ndarray).reshape(-1, c)  # a blob's HostArray as a plain view


def softmax(x, y, axis: int, xp) -> None:
    """``y`` := softmax of ``x`` along ``axis`` (``y`` may be ``x``)."""
    x2 = _rows(x, axis)
    y2 = _rows(y, axis) if x2 is not None else None
    if y2 is None:
        xp.subtract(x, x.max(axis=axis, keepdims=True), out=y)
        xp.exp(y, out=y)
        y /= y.sum(axis=axis, keepdims=True)
        return
    starts, ones = _row_helpers(x2.shape[0], x2.shape[1], y2.dtype)
    np.subtract(x2, np.maximum.reduceat(x2.reshape(-1), starts)[:, None], out=y2)
    np.exp(y2, out=y2)
    y2 /= (y2 @ ones)[:, None]


@functools.lru_cache(maxsize=32)
def _row_helpers(rows: int, c: int, dtype):
    """(each row's first flat index, a length-``c`` vector of ones) for the
    rows path, made once per shape (read only)."""
    starts = np.arange(0, rows * c, c)
    ones = np.ones(c, dtype)
    starts.flags.writeable = ones.flags.writeable = False
    return starts, ones


def softmax_dot(dy, y, axis: int, xp):
    """``sum(dy * y)`` along ``axis``, kept as a length-1 axis."""
    prod = dy * y
    p2 = _rows(prod, axis)
    if p2 is None:
        return prod.sum(axis=axis, keepdims=True)
    return (p2 @ _row_helpers(*p2.shape, p2.dtype)[1]).reshape(
        y.shape[:axis] + (1,) + y.shape[axis + 1:])


@register_layer
class SoftmaxLayer(Layer):
    type = "Softmax"
    exact_num_bottom = 1
    exact_num_top = 1

    def reshape(self, bottom, top):
        self.axis = self.canonical_axis(self.layer_param.softmax_param.axis,
                                        bottom[0].num_axes)
        if top[0] is not bottom[0]:
            top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        softmax(bottom[0].data, top[0].data, self.axis, self.xp)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        xp = self.xp
        y = top[0].data
        dy = top[0].diff
        dot = softmax_dot(dy, y, self.axis, xp)
        dx = bottom[0].diff
        xp.subtract(dy, dot, out=dx)
        dx *= y
