"""TanH: the hyperbolic tangent.

Math: ``y = tanh(x)``; ``dx = dy * (1 - y^2)``.

Bottoms: ``x`` of any shape. Tops: ``y``, same shape (may be in place).
Learnable params: none. Proto fields: tanh_param { engine } (ignored).
Gradients: to the bottom, from the top data (so in place works).
"""

from __future__ import annotations

from recaffe.layer import register_layer
from recaffe.layers.neuron import NeuronLayer


@register_layer
class TanHLayer(NeuronLayer):
    type = "TanH"

    def forward(self, bottom, top):
        self.xp.tanh(bottom[0].data, out=top[0].data)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        y = top[0].data
        t = 1 - y * y
        self.xp.multiply(top[0].diff, t, out=bottom[0].diff)
