"""BNLL: binomial normal log likelihood, ``softplus``.

Math: ``y = log(1 + exp(x))``, computed stably as
``max(x, 0) + log1p(exp(-|x|))``; ``dx = dy * sigmoid(x) = dy * (1 - exp(-y))``.

Bottoms: ``x`` of any shape. Tops: ``y``, same shape (may be in place).
Learnable params: none. Proto fields: none.
Gradients: to the bottom, from the top data (``-expm1(-y)`` is accurate for
both tails), so in place works.
"""

from __future__ import annotations

from recaffe.layer import register_layer
from recaffe.layers.neuron import NeuronLayer


@register_layer
class BNLLLayer(NeuronLayer):
    type = "BNLL"

    def forward(self, bottom, top):
        xp = self.xp
        x = bottom[0].data
        t = xp.log1p(xp.exp(-xp.abs(x)))
        xp.maximum(x, 0, out=top[0].data)
        top[0].data[...] += t

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        xp = self.xp
        sig = -xp.expm1(-top[0].data)
        xp.multiply(top[0].diff, sig, out=bottom[0].diff)
