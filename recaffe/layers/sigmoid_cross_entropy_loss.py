"""SigmoidCrossEntropyLoss: logistic loss on logits, computed stably.

Math: for logits ``x`` and targets ``t`` in [0, 1], per element

    l = -(x * (t - [x >= 0]) - log(1 + exp(x - 2 * x * [x >= 0])))

(the cross entropy of ``sigmoid(x)`` against ``t`` without overflow); the loss
is the sum over elements whose target (truncated to an integer) is not
``ignore_label``, divided by the normalizer of ``loss_param.normalization``
(FULL = count, VALID = non-ignored count, BATCH_SIZE = shape[0], NONE = 1; at
least 1). When neither ``normalization`` nor the legacy ``normalize`` is
given the mode is BATCH_SIZE (unlike SoftmaxWithLoss).
Gradient: ``(sigmoid(x) - t) * top.diff / normalizer``, zero where ignored.

Bottoms: ``x`` (N, ...) logits; ``t`` targets with the same count and N.
Tops: the loss, a 0-axis scalar.
Learnable params: none.
Proto fields: loss_param { ignore_label normalization normalize }.
Gradients: to ``x`` only; asking for one to the targets is an error.
"""

from __future__ import annotations

from recaffe.errors import LayerSetupError, ShapeError
from recaffe.layer import LossLayer, register_layer
from recaffe.layers.softmax_loss import BATCH_SIZE, normalization_mode, normalizer


@register_layer
class SigmoidCrossEntropyLossLayer(LossLayer):
    type = "SigmoidCrossEntropyLoss"

    def setup(self, bottom, top):
        lp = self.layer_param.loss_param
        self.ignore_label = (
            int(lp.ignore_label) if lp.HasField("ignore_label") else None
        )
        self.normalization = normalization_mode(lp, BATCH_SIZE)

    def reshape(self, bottom, top):
        self.check_batch(bottom)
        if bottom[0].count != bottom[1].count:
            raise self.error(
                f"bottom[0] and bottom[1] must have the same count, got shapes "
                f"{bottom[0].shape} and {bottom[1].shape}",
                ShapeError,
            )
        self.outer = bottom[0].shape[0] if bottom[0].num_axes else 1
        self.inner = bottom[0].count_range(1)
        top[0].reshape(())

    def _valid(self, bottom):
        if self.ignore_label is None:
            return None
        xp = self.xp
        t = bottom[1].data.reshape(bottom[0].shape)
        return t.astype(xp.int64) != self.ignore_label

    def forward(self, bottom, top):
        xp = self.xp
        x = bottom[0].data
        t = bottom[1].data.reshape(x.shape)
        pos = x >= 0
        per = x * (t - pos) - xp.log1p(xp.exp(x - 2 * x * pos))
        valid = self._valid(bottom)
        if valid is None:
            total = -per.sum()
            count = -1
        else:
            total = -(per * valid).sum()
            count = int(valid.sum())
        top[0].data[...] = total / normalizer(self.normalization, self.outer,
                                              self.inner, count)

    def backward(self, top, propagate_down, bottom):
        if len(propagate_down) > 1 and propagate_down[1]:
            raise self.error("cannot backpropagate to label inputs (bottom[1])",
                             LayerSetupError)
        if not propagate_down[0]:
            return
        xp = self.xp
        x = bottom[0].data
        d = bottom[0].diff
        # sigmoid(x) = (1 + tanh(x / 2)) / 2 never overflows.
        xp.multiply(x, 0.5, out=d)
        xp.tanh(d, out=d)
        d *= 0.5
        d += 0.5
        d -= bottom[1].data.reshape(x.shape)
        valid = self._valid(bottom)
        if valid is None:
            count = -1
        else:
            d *= valid
            count = int(valid.sum())
        d *= top[0].diff / normalizer(self.normalization, self.outer, self.inner,
                                      count)
