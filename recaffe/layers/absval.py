"""AbsVal: absolute value.

Math: ``y = |x|``; ``dx = sign(x) * dy`` (0 at ``x == 0``).

Bottoms: ``x`` of any shape. Tops: ``y``, same shape. In place is allowed here
(Caffe refuses it): a copy of ``x`` keeps its sign for backward.
Learnable params: none. Proto fields: none.
Gradients: to the bottom.
"""

from __future__ import annotations

from recaffe.layer import register_layer
from recaffe.layers.neuron import NeuronLayer


@register_layer
class AbsValLayer(NeuronLayer):
    type = "AbsVal"
    saves_input = True

    def forward(self, bottom, top):
        self.save_input(bottom, top)
        self.xp.abs(bottom[0].data, out=top[0].data)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        xp = self.xp
        x = self.input_data(bottom, top)
        xp.multiply(top[0].diff, xp.sign(x), out=bottom[0].diff)
