"""Eltwise: element-wise product, weighted sum or maximum of several bottoms.

Math:
- PROD: ``y = x_0 * x_1 * ...``; ``dx_i = dy * prod_{j != i} x_j`` (with
  ``stable_prod_grad: false``, ``dx_i = dy * y / x_i`` as Caffe computes it);
- SUM: ``y = sum_i c_i x_i`` (``coeff`` c, default all 1); ``dx_i = c_i dy``;
- MAX: ``y = max_i x_i``; ``dx_i = dy`` where bottom ``i`` was the arg max, else 0.
  Ties go as in Caffe: bottom 1 wins a tie with bottom 0, a later bottom must be
  strictly greater.

Bottoms: two or more blobs of exactly the same shape. Tops: one, that shape.
Learnable params: none.
Proto fields: eltwise_param { operation coeff stable_prod_grad }; coeff only
with SUM, one per bottom.
Gradients: to every bottom.
"""

from __future__ import annotations

from recaffe.errors import ShapeError
from recaffe.layer import Layer, register_layer
from recaffe.proto import caffe_pb2

_P = caffe_pb2.EltwiseParameter


@register_layer
class EltwiseLayer(Layer):
    type = "Eltwise"
    min_bottom = 2
    exact_num_top = 1

    _argmax = None

    def setup(self, bottom, top):
        p = self.layer_param.eltwise_param
        self.op = p.operation
        if self.op not in (_P.PROD, _P.SUM, _P.MAX):
            raise self.error(f"unknown eltwise_param.operation {self.op}")
        if p.coeff and self.op != _P.SUM:
            raise self.error("eltwise_param.coeff is only allowed with operation SUM")
        if p.coeff and len(p.coeff) != len(bottom):
            raise self.error(
                f"eltwise_param.coeff must be given once per bottom ({len(bottom)}), "
                f"got {len(p.coeff)}"
            )
        self.coeffs = [float(c) for c in p.coeff] or [1.0] * len(bottom)
        self.stable_prod_grad = bool(p.stable_prod_grad)

    def reshape(self, bottom, top):
        for i in range(1, len(bottom)):
            if bottom[i].shape != bottom[0].shape:
                names = self.layer_param.bottom
                n0 = f" '{names[0]}'" if len(names) > i else ""
                ni = f" '{names[i]}'" if len(names) > i else ""
                raise self.error(
                    f"bottom[{i}]{ni} must have the shape of bottom[0]{n0}: "
                    f"{bottom[0].shape}, got {bottom[i].shape}",
                    ShapeError,
                )
        if top[0] is not bottom[0]:
            top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        xp = self.xp
        y = top[0].data
        if self.op == _P.PROD:
            xp.multiply(bottom[0].data, bottom[1].data, out=y)
            for b in bottom[2:]:
                y *= b.data
        elif self.op == _P.SUM:
            c = self.coeffs
            if c[0] == 1:
                if y is not bottom[0].data:
                    y[...] = bottom[0].data
            else:
                xp.multiply(bottom[0].data, c[0], out=y)
            for ci, b in zip(c[1:], bottom[1:], strict=True):
                if ci == 1:
                    y += b.data
                else:
                    y += ci * b.data
        else:
            a, b = bottom[0].data, bottom[1].data
            idx = (b >= a).astype(xp.int32)  # ties between 0 and 1 go to 1
            xp.maximum(a, b, out=y)
            for i, blob in enumerate(bottom[2:], start=2):
                better = blob.data > y
                idx[better] = i
                xp.maximum(y, blob.data, out=y)
            self._argmax = idx

    def backward(self, top, propagate_down, bottom):
        xp = self.xp
        dy = top[0].diff
        y = top[0].data
        for i, b in enumerate(bottom):
            if not propagate_down[i]:
                continue
            dx = b.diff
            if self.op == _P.PROD:
                if self.stable_prod_grad:
                    others = [o for j, o in enumerate(bottom) if j != i]
                    g = others[0].data.copy()
                    for o in others[1:]:
                        g *= o.data
                else:
                    g = y / b.data
                xp.multiply(dy, g, out=dx)
            elif self.op == _P.SUM:
                if self.coeffs[i] == 1:
                    if dx is not dy:
                        dx[...] = dy
                else:
                    xp.multiply(dy, self.coeffs[i], out=dx)
            else:
                xp.multiply(dy, self._argmax == i, out=dx)
