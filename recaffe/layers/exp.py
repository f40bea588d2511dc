"""Exp: ``y = base ^ (shift + scale * x)``.

Math: with ``L = ln(base)`` (1 when ``base == -1``, meaning e):
``y = base^shift * exp(L * scale * x)``; ``dx = dy * y * L * scale``.

Bottoms: ``x`` of any shape. Tops: ``y``, same shape (may be in place).
Learnable params: none. Proto fields: exp_param { base scale shift }; ``base``
must be -1 or > 0.
Gradients: to the bottom, from the top data.
"""

from __future__ import annotations

import math

from recaffe.layer import register_layer
from recaffe.layers.neuron import NeuronLayer


@register_layer
class ExpLayer(NeuronLayer):
    type = "Exp"

    def setup(self, bottom, top):
        p = self.layer_param.exp_param
        base = float(p.base)
        if base != -1 and base <= 0:
            raise self.error(f"exp_param.base must be -1 (for e) or > 0, got {base}")
        log_base = 1.0 if base == -1 else math.log(base)
        self.inner_scale = log_base * float(p.scale)
        self.outer_scale = 1.0 if p.shift == 0 else math.exp(log_base * float(p.shift))

    def forward(self, bottom, top):
        xp = self.xp
        y = top[0].data
        xp.multiply(bottom[0].data, self.inner_scale, out=y)
        xp.exp(y, out=y)
        if self.outer_scale != 1:
            y *= self.outer_scale

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        xp = self.xp
        dx = bottom[0].diff
        t = top[0].data * self.inner_scale
        xp.multiply(top[0].diff, t, out=dx)
