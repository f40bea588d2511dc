"""InfogainLoss: a log loss weighted by an infogain matrix, with an internal softmax.

Math: with the scores ``x`` viewed as (outer, C, inner) around
``infogain_loss_param.axis``, ``p = softmax(x)`` along C, a C x C infogain
matrix ``H`` and, over the positions whose label ``l`` is not ``ignore_label``,

    loss = -sum sum_k H[l, k] log(max(p[o, k, i], FLT_MIN)) / normalizer

with the normalizer of ``loss_param.normalization`` (default VALID; the legacy
``normalize`` bool maps true to VALID, false to BATCH_SIZE), as SoftmaxWithLoss.
With ``H`` the identity this is SoftmaxWithLoss.
Gradient: ``d x[o, j, i] = (sum_k H[l, k] p[o, j, i] - H[l, j]) * top.diff /
normalizer``, zero at ignored positions. Labels are truncated to integers.

Bottoms: ``x`` (any shape with an ``axis``); ``label`` with outer * inner
elements; optionally ``H`` with C * C elements (e.g. (C, C) or (1, 1, C, C)).
Without a third bottom, ``H`` is read at setup from ``infogain_loss_param.source``
(a binary BlobProto file).
Tops: the loss, a 0-axis scalar; optionally a second top, the probabilities
(shape of ``x``); a layer with two tops must list both loss weights.
Learnable params: none.
Proto fields: infogain_loss_param { source axis }, loss_param { ignore_label
normalization normalize }.
Gradients: to ``x`` only; asking for one to the labels or to ``H`` is an error
(``force_backward`` reaches neither).
"""

from __future__ import annotations

import numpy as np

from recaffe.errors import LayerSetupError, ShapeError
from recaffe.layer import register_layer
from recaffe.layers.softmax_loss import (
    FLT_MIN,
    SoftmaxLossBase,
    check_labels,
    refuse_label_gradient,
)
from recaffe.proto import caffe_pb2


def load_infogain_matrix(layer, path: str) -> np.ndarray:
    """The array stored in the BlobProto file ``path`` (errors name ``layer``)."""
    from recaffe.io.caffemodel import blobproto_to_array  # noqa: PLC0415

    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise layer.error(
            f"infogain_loss_param.source '{path}': cannot open "
            f"({exc.strerror or exc})"
        ) from None
    blob = caffe_pb2.BlobProto()
    try:
        blob.ParseFromString(raw)
        return blobproto_to_array(blob)
    except Exception as exc:  # noqa: BLE001 - protobuf and numpy raise many types
        raise layer.error(
            f"infogain_loss_param.source '{path}': not a valid BlobProto ({exc})"
        ) from None


@register_layer
class InfogainLossLayer(SoftmaxLossBase):
    type = "InfogainLoss"
    exact_num_bottom = -1
    min_bottom = 2
    max_bottom = 3
    axis_field = ("infogain_loss_param", "axis")

    def allow_force_backward(self, bottom_index: int) -> bool:
        # Neither the labels nor the infogain matrix take a gradient.
        return bottom_index not in (1, 2)

    def setup(self, bottom, top):
        super().setup(bottom, top)
        self.stored_h = None
        if len(bottom) < 3:
            ip = self.layer_param.infogain_loss_param
            if not ip.source:
                raise self.error(
                    "needs the infogain matrix: give infogain_loss_param.source or "
                    "a third bottom"
                )
            self.stored_h = load_infogain_matrix(self, ip.source)

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        want = self.C * self.C
        if len(bottom) > 2:
            if bottom[2].count != want:
                raise self.error(
                    f"bottom[2] (infogain matrix) must have C * C = {want} elements "
                    f"for C = {self.C} classes, got shape {bottom[2].shape}",
                    ShapeError,
                )
        elif self.stored_h.size != want:
            raise self.error(
                f"infogain matrix from '{self.layer_param.infogain_loss_param.source}' "
                f"must have C * C = {want} elements for C = {self.C} classes, got "
                f"shape {self.stored_h.shape}",
                ShapeError,
            )

    def _matrix(self, bottom, dtype):
        xp = self.xp
        if len(bottom) > 2:
            h = bottom[2].data.reshape(self.C, self.C)
        else:
            h = xp.asarray(self.stored_h).reshape(self.C, self.C)
        return h.astype(dtype, copy=False)

    def _labels(self, bottom):
        xp = self.xp
        labels = bottom[1].data.reshape(self.outer, self.inner).astype(xp.int64)
        check_labels(self, labels, self.C, self.ignore_label, bottom[1].shape)
        if self.ignore_label is None:
            return labels, None
        valid = labels != self.ignore_label
        return xp.where(valid, labels, 0), valid

    def forward(self, bottom, top):
        xp = self.xp
        p = self.softmax(bottom)
        labels, valid = self._labels(bottom)
        h = self._matrix(bottom, p.dtype)
        logp = xp.log(xp.maximum(p, FLT_MIN))  # (outer, C, inner)
        rows = h[labels]  # (outer, inner, C): H[label, k]
        per_pos = (rows * logp.transpose(0, 2, 1)).sum(axis=2)  # (outer, inner)
        self.finish_forward(top, per_pos, valid)

    def backward(self, top, propagate_down, bottom):
        refuse_label_gradient(self, propagate_down)
        if len(propagate_down) > 2 and propagate_down[2]:
            raise self.error(
                "cannot backpropagate to infogain matrix inputs (bottom[2])",
                LayerSetupError,
            )
        if not propagate_down[0]:
            return
        xp = self.xp
        labels, valid = self._labels(bottom)
        p = self.prob.data.reshape(self.outer, self.C, self.inner)
        h = self._matrix(bottom, p.dtype)
        rows = h[labels].transpose(0, 2, 1)  # (outer, C, inner): H[label, j]
        row_sums = h.sum(axis=1)[labels]  # (outer, inner)
        d = bottom[0].diff.reshape(self.outer, self.C, self.inner)
        xp.multiply(p, row_sums[:, None, :], out=d)
        d -= rows
        if valid is not None:
            d *= valid[:, None, :]
        d *= top[0].diff / self.normalizer_for(valid)
