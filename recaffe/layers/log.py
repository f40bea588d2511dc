"""Log: ``y = log_base(shift + scale * x)``.

Math: with ``L = ln(base)`` (1 when ``base == -1``, meaning e):
``y = ln(shift + scale * x) / L``; ``dx = dy * scale / (L * (shift + scale * x))``.

Bottoms: ``x`` of any shape. Tops: ``y``, same shape (may be in place: a copy of
``x`` is kept for backward).
Learnable params: none. Proto fields: log_param { base scale shift }; ``base``
must be -1 or > 0.
Gradients: to the bottom.
"""

from __future__ import annotations

import math

from recaffe.layer import register_layer
from recaffe.layers.neuron import NeuronLayer


@register_layer
class LogLayer(NeuronLayer):
    type = "Log"
    saves_input = True

    def setup(self, bottom, top):
        p = self.layer_param.log_param
        base = float(p.base)
        if base != -1 and base <= 0:
            raise self.error(f"log_param.base must be -1 (for e) or > 0, got {base}")
        self.base_scale = 1.0 if base == -1 else 1.0 / math.log(base)
        self.scale = float(p.scale)
        self.shift = float(p.shift)

    def _inner(self, x):
        t = x * self.scale
        if self.shift != 0:
            t += self.shift
        return t

    def forward(self, bottom, top):
        xp = self.xp
        self.save_input(bottom, top)
        y = top[0].data
        xp.log(self._inner(bottom[0].data), out=y)
        if self.base_scale != 1:
            y *= self.base_scale

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        xp = self.xp
        t = self._inner(self.input_data(bottom, top))
        xp.divide(self.scale * self.base_scale, t, out=t)
        xp.multiply(top[0].diff, t, out=bottom[0].diff)
