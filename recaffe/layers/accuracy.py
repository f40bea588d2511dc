"""Accuracy: the fraction of positions whose label is among the top-k scores.

Math: with scores viewed as (outer, C, inner) around ``axis``, the prediction
at (o, i) is correct when fewer than ``top_k`` classes *other than the label*
score at least as high as the label's class (ties count against the label, as
in Caffe 1.0). Positions whose label equals ``ignore_label`` are skipped;
``top[0] = correct / counted`` (0 when nothing is counted). The optional
second top holds per-class accuracy: correct / occurrences of each label
class (0 for classes that never occur).

Bottoms: scores (any shape with an ``axis``); labels with outer * inner
elements.
Tops: a 0-axis scalar; optionally (C,) per-class accuracy.
Learnable params: none.
Proto fields: accuracy_param { top_k axis ignore_label }.
Gradients: none (not a loss layer: loss weight 0 by default).
"""

from __future__ import annotations

from recaffe.errors import LayerSetupError, ShapeError
from recaffe.layer import Layer, register_layer
from recaffe.layers.softmax_loss import check_labels


@register_layer
class AccuracyLayer(Layer):
    type = "Accuracy"
    exact_num_bottom = 2
    min_top = 1
    max_top = 2

    def setup(self, bottom, top):
        p = self.layer_param.accuracy_param
        self.top_k = int(p.top_k)
        if self.top_k < 1:
            raise self.error(f"accuracy_param.top_k must be >= 1, got {p.top_k}")
        self.ignore_label = int(p.ignore_label) if p.HasField("ignore_label") else None

    def reshape(self, bottom, top):
        x = bottom[0]
        axis = self.canonical_axis(self.layer_param.accuracy_param.axis, x.num_axes,
                                   "accuracy_param.axis")
        self.outer = x.count_range(0, axis)
        self.C = x.shape[axis]
        self.inner = x.count_range(axis + 1)
        if self.top_k > self.C:
            raise self.error(
                f"top_k ({self.top_k}) must be less than or equal to the number of "
                f"classes ({self.C}, axis {axis} of bottom[0] shape {x.shape})",
                ShapeError,
            )
        if bottom[1].count != self.outer * self.inner:
            raise self.error(
                f"bottom[1] (labels) must have outer * inner = {self.outer} * "
                f"{self.inner} = {self.outer * self.inner} elements for bottom[0] of "
                f"shape {x.shape} with axis {axis}, got shape {bottom[1].shape}",
                ShapeError,
            )
        top[0].reshape(())
        if len(top) > 1:
            top[1].reshape((self.C,))

    def forward(self, bottom, top):
        xp = self.xp
        x = bottom[0].data.reshape(self.outer, self.C, self.inner)
        labels = bottom[1].data.reshape(self.outer, self.inner).astype(xp.int64)
        check_labels(self, labels, self.C, self.ignore_label, bottom[1].shape)
        if self.ignore_label is not None:
            valid = labels != self.ignore_label
            safe = xp.where(valid, labels, 0)
        else:
            valid = xp.ones(labels.shape, dtype=bool)
            safe = labels
        o = xp.arange(self.outer)[:, None]
        i = xp.arange(self.inner)[None, :]
        true_score = x[o, safe, i]
        # The label's own class is among those >= its score, hence the -1.
        better = (x >= true_score[:, None, :]).sum(axis=1) - 1
        correct = (better < self.top_k) & valid
        count = int(valid.sum())
        top[0].data[...] = (float(correct.sum()) / count) if count else 0.0
        if len(top) > 1:
            seen = xp.bincount(safe[valid], minlength=self.C)[: self.C]
            hits = xp.bincount(safe[correct], minlength=self.C)[: self.C]
            out = top[1].data
            out[...] = 0
            has = seen > 0
            out[has] = hits[has] / seen[has]

    def allow_force_backward(self, bottom_index: int) -> bool:
        # No gradient exists; force_backward must not ask for one (Caffe would
        # abort in backward).
        return False

    def backward(self, top, propagate_down, bottom):
        if any(propagate_down):
            raise self.error("has no gradient (backward is not implemented)",
                             LayerSetupError)
