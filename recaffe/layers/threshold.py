"""Threshold: a step function.

Math: ``y = 1 if x > threshold else 0``. It has no gradient (Caffe's backward is
not implemented): backward raises if asked to propagate to the bottom.

Bottoms: ``x`` of any shape. Tops: ``y``, same shape (may be in place).
Learnable params: none. Proto fields: threshold_param { threshold }.
Gradients: none.
"""

from __future__ import annotations

from recaffe.errors import LayerSetupError
from recaffe.layer import register_layer
from recaffe.layers.neuron import NeuronLayer


@register_layer
class ThresholdLayer(NeuronLayer):
    type = "Threshold"

    def setup(self, bottom, top):
        self.threshold = float(self.layer_param.threshold_param.threshold)

    def forward(self, bottom, top):
        y = top[0].data
        mask = bottom[0].data > self.threshold
        y[...] = mask

    def allow_force_backward(self, bottom_index: int) -> bool:
        # No gradient exists; force_backward must not ask for one (Caffe would
        # abort in backward).
        return False

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            raise self.error(
                "has no gradient (a step function; Caffe does not implement its "
                "backward either); set propagate_down: false on this layer's bottom "
                "or keep it out of the backward path",
                LayerSetupError,
            )
