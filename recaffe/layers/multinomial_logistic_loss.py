"""MultinomialLogisticLoss: -log of the probability given to the true class.

Math: with probabilities ``p`` viewed as (N, dim) (dim = count / N) and one
label per item, ``loss = -sum_n log(max(p[n, label_n], 1e-20)) / N``.
Gradient: ``d p[n, label_n] = -top.diff / (N * max(p[n, label_n], 1e-20))``,
zero elsewhere.

Bottoms: ``p`` (N, C, ...) probabilities; ``label`` with N elements.
Tops: the loss, a 0-axis scalar.
Learnable params: none.
Proto fields: none beyond loss_weight.
Gradients: to ``p`` only; asking for one to the labels is an error.
"""

from __future__ import annotations

from recaffe.errors import LayerSetupError, ShapeError
from recaffe.layer import LossLayer, register_layer
from recaffe.layers.softmax_loss import check_labels

LOG_THRESHOLD = 1e-20


@register_layer
class MultinomialLogisticLossLayer(LossLayer):
    type = "MultinomialLogisticLoss"

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

    def _picked(self, bottom):
        xp = self.xp
        labels = bottom[1].data.reshape(-1).astype(xp.int64)
        check_labels(self, labels, self.dim, None, bottom[1].shape)
        p = bottom[0].data.reshape(self.num, self.dim)
        rows = xp.arange(self.num)
        return rows, labels, xp.maximum(p[rows, labels], LOG_THRESHOLD)

    def forward(self, bottom, top):
        _, _, picked = self._picked(bottom)
        top[0].data[...] = -self.xp.log(picked).sum() / self.num

    def backward(self, top, propagate_down, bottom):
        if propagate_down[1]:
            raise self.error("cannot backpropagate to label inputs (bottom[1])",
                             LayerSetupError)
        if not propagate_down[0]:
            return
        rows, labels, picked = self._picked(bottom)
        d = bottom[0].diff.reshape(self.num, self.dim)
        d[...] = 0
        d[rows, labels] = -top[0].diff / (self.num * picked)
