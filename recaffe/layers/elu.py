"""ELU: exponential linear unit.

Math: ``y = x`` if ``x > 0`` else ``alpha * (exp(x) - 1)``;
``dx = dy`` if ``x > 0`` else ``dy * (y + alpha)``.

Bottoms: ``x`` of any shape. Tops: ``y``, same shape (may be in place).
Learnable params: none. Proto fields: elu_param { alpha }.
Gradients: to the bottom. In place the sign of ``x`` is read from ``y`` (equal
signs for ``alpha >= 0``); a negative ``alpha`` keeps a copy of ``x``.
"""

from __future__ import annotations

from recaffe.layer import register_layer
from recaffe.layers.neuron import NeuronLayer


@register_layer
class ELULayer(NeuronLayer):
    type = "ELU"

    def setup(self, bottom, top):
        self.alpha = float(self.layer_param.elu_param.alpha)
        self.saves_input = self.alpha < 0

    def forward(self, bottom, top):
        xp = self.xp
        self.save_input(bottom, top)
        x = bottom[0].data
        neg = xp.expm1(xp.minimum(x, 0))
        neg *= self.alpha
        xp.maximum(x, 0, out=top[0].data)
        top[0].data[...] += neg

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        xp = self.xp
        x = self.input_data(bottom, top)
        y = top[0].data
        factor = xp.where(x > 0, 1.0, y + self.alpha).astype(y.dtype, copy=False)
        xp.multiply(top[0].diff, factor, out=bottom[0].diff)
