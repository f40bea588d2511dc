"""HingeLoss: one-vs-all hinge loss over class scores.

Math: with scores ``x`` viewed as (N, dim) and ``s = +1`` for the label's
class, ``-1`` otherwise, ``m = max(0, 1 - s * x)``; the loss is
``sum(m) / N`` (L1, the default) or ``sum(m^2) / N`` (L2).
Gradient: ``-s * [m > 0] * top.diff / N`` (L1) or ``-2 s m * top.diff / N`` (L2).

Bottoms: ``x`` (N, C, ...) scores; ``label`` with N elements.
Tops: the loss, a 0-axis scalar.
Learnable params: none.
Proto fields: hinge_loss_param { norm }.
Gradients: to ``x`` only; asking for one to the labels is an error.
"""

from __future__ import annotations

from recaffe.layer import register_layer
from recaffe.layers.softmax_loss import PerItemLabelLossLayer, refuse_label_gradient
from recaffe.proto import caffe_pb2


@register_layer
class HingeLossLayer(PerItemLabelLossLayer):
    type = "HingeLoss"

    def setup(self, bottom, top):
        norm = self.layer_param.hinge_loss_param.norm
        hp = caffe_pb2.HingeLossParameter
        if norm not in (hp.L1, hp.L2):
            raise self.error(f"unknown hinge_loss_param.norm {norm}")
        self.l2 = norm == hp.L2


    def _margins(self, bottom):
        xp = self.xp
        labels = self.checked_labels(bottom)
        x = bottom[0].data.reshape(self.num, self.dim)
        sign = xp.full(x.shape, -1.0, dtype=x.dtype)
        sign[xp.arange(self.num), labels] = 1.0
        return sign, xp.maximum(0, 1 - sign * x)

    def forward(self, bottom, top):
        _, m = self._margins(bottom)
        total = (m * m).sum() if self.l2 else m.sum()
        top[0].data[...] = total / self.num

    def backward(self, top, propagate_down, bottom):
        refuse_label_gradient(self, propagate_down)
        if not propagate_down[0]:
            return
        sign, m = self._margins(bottom)
        d = bottom[0].diff.reshape(self.num, self.dim)
        scale = top[0].diff / self.num
        if self.l2:
            d[...] = -2 * sign * m * scale
        else:
            d[...] = -sign * (m > 0) * scale
