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

from recaffe.blob import Blob
from recaffe.errors import LayerSetupError, ShapeError
from recaffe.layer import LossLayer, register_layer
from recaffe.layers.softmax_loss import (
    VALID,
    check_labels,
    normalization_mode,
    normalizer,
)
from recaffe.proto import caffe_pb2

FLT_MIN = float(np.finfo(np.float32).tiny)


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
class InfogainLossLayer(LossLayer):
    type = "InfogainLoss"
    exact_num_bottom = -1
    min_bottom = 2
    max_bottom = 3
    exact_num_top = -1
    min_top = 1
    max_top = 2

    def allow_force_backward(self, bottom_index: int) -> bool:
        # Neither the labels nor the infogain matrix take a gradient.
        return bottom_index not in (1, 2)

    def setup(self, bottom, top):
        lp = self.layer_param.loss_param
        self.ignore_label = (
            int(lp.ignore_label) if lp.HasField("ignore_label") else None
        )
        self.normalization = normalization_mode(lp, VALID)
        self.prob = Blob((), dtype=self.dtype_of(bottom[0]))
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
        self.check_batch(bottom)
        x = bottom[0]
        axis = self.canonical_axis(self.layer_param.infogain_loss_param.axis,
                                   x.num_axes, "infogain_loss_param.axis")
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
        if self.prob.dtype != x.dtype:
            self.prob = Blob((), dtype=x.dtype)
        self.prob.reshape(x.shape)
        top[0].reshape(())
        if len(top) > 1:
            top[1].reshape(x.shape)
            top[1].share_data(self.prob)

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
        x = bottom[0].data.reshape(self.outer, self.C, self.inner)
        p = self.prob.data.reshape(self.outer, self.C, self.inner)
        xp.subtract(x, x.max(axis=1, keepdims=True), out=p)
        xp.exp(p, out=p)
        p /= p.sum(axis=1, keepdims=True)

        labels, valid = self._labels(bottom)
        h = self._matrix(bottom, p.dtype)
        logp = xp.log(xp.maximum(p, FLT_MIN))  # (outer, C, inner)
        rows = h[labels]  # (outer, inner, C): H[label, k]
        per_pos = (rows * logp.transpose(0, 2, 1)).sum(axis=2)  # (outer, inner)
        if valid is not None:
            total = -(per_pos * valid).sum()
            count = int(valid.sum())
        else:
            total = -per_pos.sum()
            count = -1
        top[0].data[...] = total / normalizer(self.normalization, self.outer,
                                              self.inner, count)
        if len(top) > 1:
            top[1].share_data(self.prob)

    def backward(self, top, propagate_down, bottom):
        if len(propagate_down) > 1 and propagate_down[1]:
            raise self.error("cannot backpropagate to label inputs (bottom[1])",
                             LayerSetupError)
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
            count = int(valid.sum())
        else:
            count = -1
        d *= top[0].diff / normalizer(self.normalization, self.outer, self.inner,
                                      count)
