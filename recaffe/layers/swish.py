"""Swish: ``y = x * sigmoid(beta * x)``.

Math: with ``s = sigmoid(beta x)``: ``dx = dy * (beta * y + s * (1 - beta * y))``.

Bottoms: ``x`` of any shape. Tops: ``y``, same shape (may be in place).
Learnable params: none. Proto fields: swish_param { beta }.
Gradients: to the bottom, from the top data and the saved ``s``.
"""

from __future__ import annotations

from recaffe.layer import register_layer
from recaffe.layers.neuron import NeuronLayer


@register_layer
class SwishLayer(NeuronLayer):
    type = "Swish"

    _sig = None

    def setup(self, bottom, top):
        self.beta = float(self.layer_param.swish_param.beta)

    def forward(self, bottom, top):
        xp = self.xp
        x = bottom[0].data
        s = self._sig
        if s is None or s.shape != x.shape or s.dtype != x.dtype:
            s = self._sig = xp.empty_like(x)
        # sigmoid(z) = 0.5 tanh(z / 2) + 0.5: no overflow.
        xp.multiply(x, 0.5 * self.beta, out=s)
        xp.tanh(s, out=s)
        s *= 0.5
        s += 0.5
        xp.multiply(x, s, out=top[0].data)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        s = self._sig
        by = top[0].data * self.beta
        t = s * (1 - by)
        t += by
        self.xp.multiply(top[0].diff, t, out=bottom[0].diff)
