"""Power: ``y = (shift + scale * x) ^ power``.

Math: ``dx = dy * power * scale * (shift + scale * x) ^ (power - 1)``. When
``power * scale == 0`` the output is the constant ``shift ^ power`` (1 for
``power == 0``) and the gradient is 0, as in Caffe.

Bottoms: ``x`` of any shape. Tops: ``y``, same shape (may be in place: a copy
of ``x`` is kept for backward).
Learnable params: none. Proto fields: power_param { power scale shift }.
Gradients: to the bottom.
"""

from __future__ import annotations

from recaffe.layer import register_layer
from recaffe.layers.neuron import NeuronLayer


@register_layer
class PowerLayer(NeuronLayer):
    type = "Power"

    def setup(self, bottom, top):
        p = self.layer_param.power_param
        self.power = float(p.power)
        self.scale = float(p.scale)
        self.shift = float(p.shift)
        self.diff_scale = self.power * self.scale
        # Backward reads x unless the gradient is constant.
        self.saves_input = self.diff_scale != 0 and self.power != 1

    def forward(self, bottom, top):
        xp = self.xp
        y = top[0].data
        if self.diff_scale == 0:
            y[...] = 1.0 if self.power == 0 else self.shift ** self.power
            return
        self.save_input(bottom, top)
        x = bottom[0].data
        if self.scale != 1 or x is not y:
            xp.multiply(x, self.scale, out=y)
        if self.shift != 0:
            y += self.shift
        if self.power != 1:
            xp.power(y, self.power, out=y)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        xp = self.xp
        dx = bottom[0].diff
        if self.diff_scale == 0:
            dx[...] = 0
            return
        if self.power == 1:
            xp.multiply(top[0].diff, self.diff_scale, out=dx)
            return
        x = self.input_data(bottom, top)
        base = x * self.scale
        if self.shift != 0:
            base += self.shift
        if self.power != 2:
            xp.power(base, self.power - 1, out=base)
        base *= self.diff_scale
        xp.multiply(top[0].diff, base, out=dx)
