"""InnerProduct: a fully connected layer.

Math: with K = product of bottom axes >= ``axis`` and M = product of the axes
before it, ``top = bottom.reshape(M, K) @ W.T + b`` (``W`` is (N, K); with
``transpose: true`` it is stored (K, N) and ``top = x @ W``).

Bottoms: ``x`` of any shape with at least ``axis`` axes.
Tops: shape ``bottom.shape[:axis] + (N,)``.
Learnable params: ``W`` ((N, K), or (K, N) transposed), ``b`` ((N,), if bias_term).
Proto fields: inner_product_param { num_output bias_term weight_filler bias_filler
axis transpose }.
Gradients: to the bottom and both params.
"""

from __future__ import annotations

import numpy as np

from recaffe.backend import blas
from recaffe.errors import ShapeError
from recaffe.layer import Layer, register_layer


@register_layer
class InnerProductLayer(Layer):
    type = "InnerProduct"
    exact_num_bottom = 1
    exact_num_top = 1
    _ones = None

    def setup(self, bottom, top):
        p = self.layer_param.inner_product_param
        self.N = int(p.num_output)
        if self.N <= 0:
            raise self.error(f"num_output must be > 0, got {p.num_output}")
        self.bias_term = p.bias_term
        self.transpose = p.transpose
        self.axis = self.canonical_axis(p.axis, bottom[0].num_axes)
        self.K = bottom[0].count_range(self.axis)
        if not self.blobs:
            wshape = (self.K, self.N) if self.transpose else (self.N, self.K)
            self.make_param_blob(wshape, p.weight_filler if p.HasField(
                "weight_filler") else None)
            if self.bias_term:
                self.make_param_blob((self.N,), p.bias_filler if p.HasField(
                    "bias_filler") else None)

    def reshape(self, bottom, top):
        axis = self.canonical_axis(self.layer_param.inner_product_param.axis,
                                   bottom[0].num_axes)
        k = bottom[0].count_range(axis)
        if k != self.K:
            raise self.error(
                f"bottom[0] has {k} input features (product of axes >= {axis} "
                f"of shape {bottom[0].shape}), expected {self.K} as at setup",
                ShapeError,
            )
        self.M = bottom[0].count_range(0, axis)
        top[0].reshape(bottom[0].shape[:axis] + (self.N,))

    def forward(self, bottom, top):
        x = bottom[0].data.reshape(self.M, self.K)
        w = self.blobs[0].data
        y = top[0].data.reshape(self.M, self.N)
        blas.matmul(x, w if self.transpose else w.T, out=y)
        if self.bias_term:
            y += self.blobs[1].data

    def backward(self, top, propagate_down, bottom):
        xp = self.xp
        dy = top[0].diff.reshape(self.M, self.N)
        x = bottom[0].data.reshape(self.M, self.K)
        if self.param_propagate_down[0]:
            w_diff = self.blobs[0].diff
            if self.transpose:
                blas.matmul_acc(x.T, dy, w_diff)
            else:
                blas.matmul_acc(dy.T, x, w_diff)
        if self.bias_term and self.param_propagate_down[1]:
            # ones @ dy is a GEMV: several times faster than dy.sum(axis=0).
            ones = self._ones
            if (ones is None or ones.shape[0] != self.M or ones.dtype != dy.dtype
                    or type(ones) is not type(dy)):
                ones = self._ones = xp.ones(self.M, dtype=dy.dtype)
            bd = self.blobs[1].diff
            if type(bd) is np.ndarray:
                bd += xp.dot(ones, dy)
            else:  # through blas: capturable in a CUDA graph
                blas.matmul_acc(ones, dy, bd)
        if propagate_down[0]:
            w = self.blobs[0].data
            dx = bottom[0].diff.reshape(self.M, self.K)
            blas.matmul(dy, w.T if self.transpose else w, out=dx)
