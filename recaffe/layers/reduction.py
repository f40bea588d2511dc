"""Reduction: sum-like reduction over all axes from ``axis`` on.

Math: with ``x`` viewed as (num, dim), ``num = prod(shape[:axis])``:
- SUM: ``y = coeff * sum(x)``, ``dx = coeff * dy``;
- ASUM: ``y = coeff * sum(|x|)``, ``dx = coeff * sign(x) * dy``;
- SUMSQ: ``y = coeff * sum(x^2)``, ``dx = 2 coeff x dy``;
- MEAN: ``y = coeff * sum(x) / dim``, ``dx = coeff / dim * dy``.

Bottoms: ``x`` of any shape. Tops: ``y`` of shape ``x.shape[:axis]`` (a scalar
for ``axis: 0``, the default).
Learnable params: none.
Proto fields: reduction_param { operation axis coeff }.
Gradients: to the bottom.
"""

from __future__ import annotations

from recaffe.layer import Layer, register_layer
from recaffe.proto import caffe_pb2

_R = caffe_pb2.ReductionParameter


@register_layer
class ReductionLayer(Layer):
    type = "Reduction"
    exact_num_bottom = 1
    exact_num_top = 1

    def setup(self, bottom, top):
        p = self.layer_param.reduction_param
        self.op = p.operation
        if self.op not in (_R.SUM, _R.ASUM, _R.SUMSQ, _R.MEAN):
            raise self.error(f"unknown reduction_param.operation {self.op}")

    def reshape(self, bottom, top):
        p = self.layer_param.reduction_param
        nax = bottom[0].num_axes
        # axis == num_axes would reduce nothing; Caffe allows only < num_axes
        # (and 0 for a scalar bottom).
        axis = 0 if nax == 0 else self.canonical_axis(p.axis, nax)
        self.axis = axis
        self.num = bottom[0].count_range(0, axis)
        self.dim = bottom[0].count_range(axis)
        self.coeff = float(p.coeff)
        if self.op == _R.MEAN and self.dim:
            self.coeff /= self.dim
        top[0].reshape(bottom[0].shape[:axis])

    def forward(self, bottom, top):
        xp = self.xp
        x = bottom[0].data.reshape(self.num, self.dim)
        y = top[0].data.reshape(self.num)
        if self.op == _R.ASUM:
            xp.abs(x).sum(axis=1, out=y)
        elif self.op == _R.SUMSQ:
            (x * x).sum(axis=1, out=y)
        else:
            x.sum(axis=1, out=y)
        if self.coeff != 1:
            y *= self.coeff

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        xp = self.xp
        dy = top[0].diff.reshape(self.num, 1) * self.coeff
        dx = bottom[0].diff.reshape(self.num, self.dim)
        if self.op == _R.ASUM:
            xp.multiply(xp.sign(bottom[0].data.reshape(self.num, self.dim)), dy, out=dx)
        elif self.op == _R.SUMSQ:
            xp.multiply(bottom[0].data.reshape(self.num, self.dim), 2 * dy, out=dx)
        else:
            dx[...] = dy
