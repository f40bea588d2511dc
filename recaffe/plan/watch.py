"""The shape watch: a plan is valid only for the top shapes it was built for.

Layers whose ``reshape`` depends only on bottom shapes and parameters
(``PURE_RESHAPE``) are not reshaped in steady state; every other layer (data
layers, Python layers, …) is reshaped before each forward as Caffe does, and
its top shapes are compared with the ones the plan was built for. A change
raises :class:`ShapeChanged` inside the pass (the rest runs the plain way and
the plan is rebuilt on the next call); :meth:`ShapeWatch.valid` is the cheap
check before a pass.
"""

from __future__ import annotations

from recaffe.blob import Blob

#: Layer types whose reshape depends only on bottom shapes and their params, so
#: that a plan built for fixed input shapes may skip it.
PURE_RESHAPE = frozenset({
    "AbsVal", "Accuracy", "ArgMax", "BNLL", "Bias", "Clip", "Concat", "ELU",
    "Eltwise", "Embed", "EuclideanLoss", "Exp", "Flatten", "InnerProduct",
    "Log", "Power", "ReLU", "Reduction", "Reshape", "Scale", "Sigmoid",
    "SigmoidCrossEntropyLoss", "Silence", "Slice", "Softmax", "SoftmaxWithLoss",
    "Split", "Swish", "TanH", "Threshold", "Tile", "Dropout", "LSTMUnit",
})


class ShapeChanged(Exception):  # noqa: N818 - internal control flow
    """A reshaped layer produced other top shapes than the plan was built for."""


class ShapeWatch(list):
    """``(blob, shape)`` pairs of the tops of layers reshaped at every pass."""

    def add(self, tops: list[Blob]) -> None:
        self.extend((tb, tb.shape) for tb in tops)

    def valid(self) -> bool:
        """Whether every watched top kept its shape."""
        return all(b.shape == s for b, s in self)


def reshaping_forward(layer, tops: list[Blob], losses, sink, xp):
    """Forward of a layer that is reshaped at every pass: reshape, forward,
    add its loss terms to ``sink.loss``, and raise :class:`ShapeChanged` when
    a top's shape differs from the one it had when this was built."""
    shapes = [tb.shape for tb in tops]
    reshape, forward = layer.reshape, layer.forward
    dot = xp.dot

    def run(b, t):
        reshape(b, t)
        forward(b, t)
        for tb, _w in losses:
            d = tb.data.reshape(-1)
            sink.loss += float(dot(d, tb.diff.reshape(-1)))
        for k, tb in enumerate(t):
            if tb.shape != shapes[k]:
                raise ShapeChanged
    return run

