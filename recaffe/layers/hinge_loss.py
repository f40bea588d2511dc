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

from recaffe.errors import LayerSetupError, ShapeError
from recaffe.layer import LossLayer, register_layer
from recaffe.layers.softmax_loss import check_labels
from recaffe.proto import caffe_pb2


@register_layer
class HingeLossLayer(LossLayer):
    type = "HingeLoss"

    def setup(self, bottom, top):
        norm = self.layer_param.hinge_loss_param.norm
        hp = caffe_pb2.HingeLossParameter
        if norm not in (hp.L1, hp.L2):
            raise self.error(f"unknown hinge_loss_param.norm {norm}")
        self.l2 = norm == hp.L2

    def reshape(self, bottom, top):
        self.check_batch(bottom)
        self.num = bottom[0].shape[0] if bottom[0].num_axes else 1
        if bottom[1].count != self.num:
            raise self.error(
                f"bottom[1] (labels) must have one label per item ({self.num}), got "
                f"shape {bottom[1].shape}",
                ShapeError,
            )
        self.dim = bottom[0].count // max(self.num, 1)
        top[0].reshape(())

    def _margins(self, bottom):
        xp = self.xp
        labels = bottom[1].data.reshape(-1).astype(xp.int64)
        check_labels(self, labels, self.dim, None, bottom[1].shape)
        x = bottom[0].data.reshape(self.num, self.dim)
        sign = xp.full(x.shape, -1.0, dtype=x.dtype)
        sign[xp.arange(self.num), labels] = 1.0
        return sign, xp.maximum(0, 1 - sign * x)

    def forward(self, bottom, top):
        _, m = self._margins(bottom)
        total = (m * m).sum() if self.l2 else m.sum()
        top[0].data[...] = total / self.num

    def backward(self, top, propagate_down, bottom):
        if propagate_down[1]:
            raise self.error("cannot backpropagate to label inputs (bottom[1])",
                             LayerSetupError)
        if not propagate_down[0]:
            return
        sign, m = self._margins(bottom)
        d = bottom[0].diff.reshape(self.num, self.dim)
        scale = top[0].diff / self.num
        if self.l2:
            d[...] = -2 * sign * m * scale
        else:
            d[...] = -sign * (m > 0) * scale
