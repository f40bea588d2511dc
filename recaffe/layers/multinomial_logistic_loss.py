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

from recaffe.layer import register_layer
from recaffe.layers.softmax_loss import PerItemLabelLossLayer, refuse_label_gradient

LOG_THRESHOLD = 1e-20


@register_layer
class MultinomialLogisticLossLayer(PerItemLabelLossLayer):
    type = "MultinomialLogisticLoss"


    def _picked(self, bottom):
        xp = self.xp
        labels = self.checked_labels(bottom)
        p = bottom[0].data.reshape(self.num, self.dim)
        rows = xp.arange(self.num)
        return rows, labels, xp.maximum(p[rows, labels], LOG_THRESHOLD)

    def forward(self, bottom, top):
        _, _, picked = self._picked(bottom)
        top[0].data[...] = -self.xp.log(picked).sum() / self.num

    def backward(self, top, propagate_down, bottom):
        refuse_label_gradient(self, propagate_down)
        if not propagate_down[0]:
            return
        rows, labels, picked = self._picked(bottom)
        d = bottom[0].diff.reshape(self.num, self.dim)
        d[...] = 0
        d[rows, labels] = -top[0].diff / (self.num * picked)
