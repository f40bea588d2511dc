"""PReLU: ReLU with a learned slope for negative inputs.

Math: ``y = max(x, 0) + a_c * min(x, 0)`` with ``a_c`` the slope of channel
``c`` (axis 1), or one slope for all channels when ``channel_shared``;
``dx = dy * (1 if x > 0 else a_c)``, ``da_c += sum(dy * x * [x <= 0])`` over all
axes but the channel one (over everything when shared).

Bottoms: ``x`` with at least 2 axes (N, C, ...). Tops: ``y``, same shape (may be
in place: a copy of ``x`` is kept for backward).
Learnable params: slope, shape (C,), or () when channel_shared.
Proto fields: prelu_param { filler (absent => constant 0.25) channel_shared }.
Gradients: to the bottom and the slope.
"""

from __future__ import annotations

from recaffe.errors import ShapeError
from recaffe.filler import filler_or
from recaffe.layer import register_layer
from recaffe.layers.neuron import NeuronLayer


@register_layer
class PReLULayer(NeuronLayer):
    type = "PReLU"
    saves_input = True

    def setup(self, bottom, top):
        p = self.layer_param.prelu_param
        if bottom[0].num_axes < 2:
            raise self.error(
                f"bottom[0] must have at least 2 axes (N, C, ...), got shape "
                f"{bottom[0].shape}",
                ShapeError,
            )
        self.channel_shared = bool(p.channel_shared)
        self.channels = bottom[0].shape[1]
        if not self.blobs:
            shape = () if self.channel_shared else (self.channels,)
            self.make_param_blob(shape, filler_or(p, "filler", "constant", 0.25))

    def reshape(self, bottom, top):
        if bottom[0].num_axes < 2 or (
            not self.channel_shared and bottom[0].shape[1] != self.channels
        ):
            raise self.error(
                f"bottom[0] must have shape (N, {self.channels}, ...), got "
                f"{bottom[0].shape}",
                ShapeError,
            )
        super().reshape(bottom, top)

    def _slope(self, x):
        """The slope shaped to broadcast against ``x`` (N, C, ...)."""
        a = self.blobs[0].data
        if self.channel_shared:
            return a.reshape(())
        return a.reshape((1, self.channels) + (1,) * (x.ndim - 2))

    def forward(self, bottom, top):
        xp = self.xp
        self.save_input(bottom, top)
        x = bottom[0].data
        neg = xp.minimum(x, 0)
        neg *= self._slope(x)
        xp.maximum(x, 0, out=top[0].data)
        top[0].data[...] += neg

    def backward(self, top, propagate_down, bottom):
        xp = self.xp
        x = self.input_data(bottom, top)
        dy = top[0].diff
        if self.param_propagate_down[0]:
            g = dy * xp.minimum(x, 0)  # x * [x <= 0]
            if self.channel_shared:
                self.blobs[0].diff[...] += g.sum()
            else:
                axes = (0,) + tuple(range(2, x.ndim))
                self.blobs[0].diff[...] += g.sum(axis=axes).reshape(
                    self.blobs[0].shape
                )
        if propagate_down[0]:
            a = self._slope(x)
            factor = xp.where(x > 0, xp.ones((), dtype=x.dtype), a)
            xp.multiply(dy, factor, out=bottom[0].diff)
