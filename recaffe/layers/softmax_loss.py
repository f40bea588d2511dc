"""SoftmaxWithLoss: softmax over one axis followed by the multinomial log loss.

Math: with the bottom viewed as (outer, C, inner) around ``axis``,
``p = softmax(x)`` along C and, over the positions whose label is not
``ignore_label``,

    loss = -sum log(max(p[o, label[o, i], i], FLT_MIN)) / normalizer

where the normalizer is chosen by ``loss_param.normalization``: FULL =
outer * inner, VALID = number of non-ignored positions, BATCH_SIZE = outer,
NONE = 1 (each at least 1). The legacy ``normalize`` bool, consulted only when
``normalization`` is absent, maps true to VALID and false to BATCH_SIZE.
Gradient: ``(p - onehot(label)) * top.diff / normalizer``, zero at ignored
positions. Labels are truncated to integers, as Caffe's cast does.

Bottoms: ``x`` (any shape with an ``axis``); ``label`` with outer * inner
elements (e.g. (N,) for (N, C) scores, (T, N) for (T, N, V) with axis 2).
Tops: the loss, a 0-axis scalar; optionally a second top, the probabilities
(shape of ``x``); a layer with two tops must list both loss weights.
Learnable params: none.
Proto fields: softmax_param { axis }, loss_param { ignore_label normalization
normalize }.
Gradients: to ``x`` only; asking for one to the labels is an error.
"""

from __future__ import annotations

import numpy as np

from recaffe.backend import cuda_graph
from recaffe.blob import Blob
from recaffe.errors import DataError, LayerSetupError, ShapeError
from recaffe.layer import LossLayer, register_layer
from recaffe.layers.softmax import softmax
from recaffe.proto import caffe_pb2

FULL = caffe_pb2.LossParameter.FULL
VALID = caffe_pb2.LossParameter.VALID
BATCH_SIZE = caffe_pb2.LossParameter.BATCH_SIZE
NONE = caffe_pb2.LossParameter.NONE
FLT_MIN = float(np.finfo(np.float32).tiny)


def normalization_mode(loss_param, default: int = VALID) -> int:
    """The NormalizationMode of ``loss_param``, honouring legacy ``normalize``."""
    if loss_param.HasField("normalization"):
        return int(loss_param.normalization)
    if loss_param.HasField("normalize"):
        return VALID if loss_param.normalize else BATCH_SIZE
    return default


def normalizer(mode: int, outer: int, inner: int, valid_count: int) -> float:
    """Caffe's LossLayer::GetNormalizer: the divisor of the summed loss, >= 1.

    ``valid_count`` < 0 means "no ignore label": VALID then counts everything.
    """
    if mode == FULL:
        n = outer * inner
    elif mode == VALID:
        n = outer * inner if valid_count < 0 else valid_count
    elif mode == BATCH_SIZE:
        n = outer
    else:  # NONE
        n = 1
    return float(max(1, n))


def check_labels(layer, labels, num_classes: int, ignore_label, label_shape) -> None:
    """Raise DataError if an integer label is outside [0, C) and not ignored.

    ``labels`` is the integer label array (any shape with as many elements as
    the label blob); ``label_shape`` is the label blob's shape, used to name the
    position of the first bad label.
    """
    xp = layer.xp
    bad = (labels < 0) | (labels >= num_classes)
    if ignore_label is not None:
        bad &= labels != ignore_label
    # In a CUDA-graph capture the flag is read after each replay instead.
    if cuda_graph.any_flag(bad, lambda: check_labels(layer, labels, num_classes,
                                                     ignore_label, label_shape)):
        flat = int(xp.argmax(bad.reshape(-1)))
        value = int(labels.reshape(-1)[flat])
        pos = tuple(int(i) for i in np.unravel_index(flat, label_shape))
        hint = (
            "" if ignore_label is None
            else f" and is not ignore_label {ignore_label}"
        )
        raise layer.error(
            f"label {value} at bottom[1] position {pos} is outside [0, {num_classes}) "
            f"(C = {num_classes} classes){hint}",
            DataError,
        )


def refuse_label_gradient(layer, propagate_down) -> None:
    """Labels (bottom[1]) take no gradient: asking for one is an error."""
    if len(propagate_down) > 1 and propagate_down[1]:
        raise layer.error("cannot backpropagate to label inputs (bottom[1])",
                          LayerSetupError)


class PerItemLabelLossLayer(LossLayer):
    """Base of losses over (N, ...) scores with one integer label per item."""

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

    def checked_labels(self, bottom):
        """The labels as integers, range-checked against ``self.dim`` classes."""
        labels = bottom[1].data.reshape(-1).astype(self.xp.int64)
        check_labels(self, labels, self.dim, None, bottom[1].shape)
        return labels


class SoftmaxLossBase(LossLayer):
    """Shared part of the losses with an internal softmax over ``axis``
    (SoftmaxWithLoss, InfogainLoss): loss_param handling, the (outer, C, inner)
    view, the label-count check, the probabilities (optional second top) and
    the normalised reduction."""

    exact_num_top = -1
    min_top = 1
    max_top = 2
    #: (parameter message, field name) of the softmax axis.
    axis_field = ("softmax_param", "axis")

    def setup(self, bottom, top):
        lp = self.layer_param.loss_param
        self.ignore_label = (
            int(lp.ignore_label) if lp.HasField("ignore_label") else None
        )
        self.normalization = normalization_mode(lp, VALID)
        self.prob = Blob((), dtype=self.dtype_of(bottom[0]))

    def reshape(self, bottom, top):
        self.check_batch(bottom)
        x = bottom[0]
        msg, field = self.axis_field
        axis = self.canonical_axis(getattr(getattr(self.layer_param, msg), field),
                                   x.num_axes, f"{msg}.{field}")
        self.axis = axis
        self.outer = x.count_range(0, axis)
        self.C = x.shape[axis]
        self.inner = x.count_range(axis + 1)
        if bottom[1].count != self.outer * self.inner:
            raise self.error(
                f"bottom[1] (labels) must have outer * inner = {self.outer} * "
                f"{self.inner} = {self.outer * self.inner} elements for bottom[0] of "
                f"shape {x.shape} with axis {axis}, got shape {bottom[1].shape}",
                ShapeError,
            )
        if self.prob.dtype != x.dtype:
            self.prob = Blob((), dtype=x.dtype)
        self.prob.reshape(x.shape)
        top[0].reshape(())
        if len(top) > 1:
            top[1].reshape(x.shape)
            top[1].share_data(self.prob)

    def softmax(self, bottom):
        """Softmax of bottom[0] into ``self.prob``; its (outer, C, inner) view."""
        softmax(bottom[0].data, self.prob.data, self.axis, self.xp)
        return self.prob.data.reshape(self.outer, self.C, self.inner)

    def normalizer_for(self, valid) -> float:
        count = -1 if valid is None else int(valid.sum())
        return normalizer(self.normalization, self.outer, self.inner, count)

    def finish_forward(self, top, per_pos, valid) -> None:
        """top[0] = -sum(per_pos over valid positions) / normalizer."""
        total = -(per_pos * valid).sum() if valid is not None else -per_pos.sum()
        top[0].data[...] = total / self.normalizer_for(valid)
        if len(top) > 1:
            top[1].share_data(self.prob)



@register_layer
class SoftmaxWithLossLayer(SoftmaxLossBase):
    type = "SoftmaxWithLoss"

    def _labels(self, bottom):
        xp = self.xp
        return bottom[1].data.reshape(self.outer, self.inner).astype(xp.int64)

    def forward(self, bottom, top):
        xp = self.xp
        p = self.softmax(bottom)
        labels = self._labels(bottom)
        check_labels(self, labels, self.C, self.ignore_label, bottom[1].shape)
        if self.ignore_label is not None:
            valid = labels != self.ignore_label
            safe = xp.where(valid, labels, 0)
        else:
            valid = None
            safe = labels
        o = xp.arange(self.outer)[:, None]
        i = xp.arange(self.inner)[None, :]
        picked = p[o, safe, i]
        self.finish_forward(top, xp.log(xp.maximum(picked, FLT_MIN)), valid)

    def backward(self, top, propagate_down, bottom):
        refuse_label_gradient(self, propagate_down)
        if not propagate_down[0]:
            return
        xp = self.xp
        labels = self._labels(bottom)
        d = bottom[0].diff.reshape(self.outer, self.C, self.inner)
        p = self.prob.data.reshape(self.outer, self.C, self.inner)
        o = xp.arange(self.outer)[:, None]
        i = xp.arange(self.inner)[None, :]
        if self.ignore_label is not None:
            valid = labels != self.ignore_label
            d[...] = p
            d[o, xp.where(valid, labels, 0), i] -= valid.astype(d.dtype)
            d *= valid[:, None, :]
            d *= top[0].diff / self.normalizer_for(valid)
            return
        # (p - onehot) * scale in two passes instead of three, the same bits
        scale = top[0].diff / self.normalizer_for(None)
        xp.multiply(p, scale, out=d)
        d[o, labels, i] = (p[o, labels, i] - 1) * scale
