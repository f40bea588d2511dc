"""Clip: clamp to ``[min, max]``.

Math: ``y = min(max(x, min), max)``; ``dx = dy`` where ``min <= x <= max``, else 0.

Bottoms: ``x`` of any shape. Tops: ``y``, same shape (may be in place: a copy of
``x`` is kept for backward).
Learnable params: none. Proto fields: clip_param { min max } (both required,
``min <= max``).
Gradients: to the bottom.
"""

from __future__ import annotations

from recaffe.layer import register_layer
from recaffe.layers.neuron import NeuronLayer


@register_layer
class ClipLayer(NeuronLayer):
    type = "Clip"
    saves_input = True

    def setup(self, bottom, top):
        p = self.layer_param.clip_param
        if not (p.HasField("min") and p.HasField("max")):
            raise self.error("clip_param needs both min and max")
        self.min = float(p.min)
        self.max = float(p.max)
        if self.min > self.max:
            raise self.error(
                f"clip_param.min ({self.min}) must not exceed clip_param.max "
                f"({self.max})"
            )

    def forward(self, bottom, top):
        self.save_input(bottom, top)
        self.xp.clip(bottom[0].data, self.min, self.max, out=top[0].data)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        x = self.input_data(bottom, top)
        inside = (x >= self.min) & (x <= self.max)
        self.xp.multiply(top[0].diff, inside, out=bottom[0].diff)
