"""ReLU: rectified linear unit with an optional leak.

Math: ``y = max(x, 0) + negative_slope * min(x, 0)``;
``dx = dy * (1 if x > 0 else negative_slope)`` (Caffe's choice at ``x == 0``).

Bottoms: ``x`` of any shape. Tops: ``y``, same shape (usually in place).
Learnable params: none.
Proto fields: relu_param { negative_slope engine } (engine ignored).
Gradients: to the bottom. In place the sign of ``x`` is read from ``y``, which
keeps it whenever ``negative_slope >= 0``; a negative slope keeps a copy of ``x``.
"""

from __future__ import annotations

from recaffe.layer import register_layer
from recaffe.layers.neuron import NeuronLayer


@register_layer
class ReLULayer(NeuronLayer):
    type = "ReLU"

    def setup(self, bottom, top):
        self.negative_slope = float(self.layer_param.relu_param.negative_slope)
        self.saves_input = self.negative_slope < 0

    def forward(self, bottom, top):
        xp = self.xp
        self.save_input(bottom, top)
        x = bottom[0].data
        ns = self.negative_slope
        if ns == 0:
            xp.maximum(x, 0, out=top[0].data)
        else:
            # min(x, 0) first: top may alias x.
            neg = xp.minimum(x, 0)
            xp.maximum(x, 0, out=top[0].data)
            neg *= ns
            top[0].data[...] += neg

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        xp = self.xp
        x = self.input_data(bottom, top)
        dy = top[0].diff
        pos = x > 0
        ns = self.negative_slope
        if ns == 0:
            xp.multiply(dy, pos, out=bottom[0].diff)
        else:
            factor = xp.where(pos, 1.0, ns).astype(x.dtype, copy=False)
            xp.multiply(dy, factor, out=bottom[0].diff)
