"""Sigmoid: the logistic function.

Math: ``y = 1 / (1 + exp(-x))``, computed as ``0.5 * tanh(0.5 x) + 0.5`` (no
overflow for large ``|x|``); ``dx = dy * y * (1 - y)``.

Bottoms: ``x`` of any shape. Tops: ``y``, same shape (may be in place).
Learnable params: none. Proto fields: sigmoid_param { engine } (ignored).
Gradients: to the bottom, from the top data (so in place works).
"""

from __future__ import annotations

from recaffe.layer import register_layer
from recaffe.layers.neuron import NeuronLayer


@register_layer
class SigmoidLayer(NeuronLayer):
    type = "Sigmoid"

    def forward(self, bottom, top):
        xp = self.xp
        y = top[0].data
        xp.multiply(bottom[0].data, 0.5, out=y)
        xp.tanh(y, out=y)
        y *= 0.5
        y += 0.5

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        y = top[0].data
        dx = bottom[0].diff
        # dy * y * (1 - y), with dx possibly aliasing dy (in place).
        t = y * (1 - y)
        self.xp.multiply(top[0].diff, t, out=dx)
