"""Dropout: randomly zero elements while training.

Math: TRAIN: ``mask ~ Bernoulli(1 - r)`` per element, ``y = x * mask / (1 - r)``,
``dx = dy * mask / (1 - r)``; TEST: ``y = x``, ``dx = dy``.

The mask is drawn from :func:`recaffe.backend.rng` (so reseeding it reproduces
the mask) and kept for backward.

Bottoms: ``x`` of any shape. Tops: ``y``, same shape (may be in place).
Learnable params: none. Proto fields: dropout_param { dropout_ratio } with
``0 < r < 1``.
Gradients: to the bottom.
"""

from __future__ import annotations

from recaffe import backend
from recaffe.layer import register_layer
from recaffe.layers.neuron import NeuronLayer
from recaffe.proto import caffe_pb2


@register_layer
class DropoutLayer(NeuronLayer):
    type = "Dropout"

    _mask = None

    def setup(self, bottom, top):
        r = float(self.layer_param.dropout_param.dropout_ratio)
        if not 0.0 < r < 1.0:
            raise self.error(f"dropout_param.dropout_ratio must be in (0, 1), got {r}")
        self.ratio = r
        self.scale = 1.0 / (1.0 - r)

    @property
    def training(self) -> bool:
        return self.phase == caffe_pb2.TRAIN

    def forward(self, bottom, top):
        xp = self.xp
        x = bottom[0].data
        y = top[0].data
        if not self.training:
            if y is not x:
                y[...] = x
            return
        keep = backend.random_bernoulli(x.shape, 1.0 - self.ratio)
        # The mask carries the 1 / (1 - r) scale, in the bottom's dtype.
        mask = keep.astype(x.dtype)
        mask *= self.scale
        self._mask = mask
        xp.multiply(x, mask, out=y)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy = top[0].diff
        dx = bottom[0].diff
        if not self.training:
            if dx is not dy:
                dx[...] = dy
            return
        self.xp.multiply(dy, self._mask, out=dx)
