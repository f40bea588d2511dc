"""Softmax along one axis.

Math: ``y = exp(x - max(x)) / sum(exp(x - max(x)))`` along ``axis`` (subtracting
the max keeps it finite); ``dx = y * (dy - sum(dy * y))`` along ``axis``.

Bottoms: ``x`` of any shape. Tops: ``y``, same shape (may be in place).
Learnable params: none. Proto fields: softmax_param { axis engine } (engine
ignored).
Gradients: to the bottom, from the top data.
"""

from __future__ import annotations

from recaffe.layer import Layer, register_layer


@register_layer
class SoftmaxLayer(Layer):
    type = "Softmax"
    exact_num_bottom = 1
    exact_num_top = 1

    def reshape(self, bottom, top):
        self.axis = self.canonical_axis(self.layer_param.softmax_param.axis,
                                        bottom[0].num_axes)
        if top[0] is not bottom[0]:
            top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        xp = self.xp
        x = bottom[0].data
        y = top[0].data
        m = x.max(axis=self.axis, keepdims=True)
        xp.subtract(x, m, out=y)
        xp.exp(y, out=y)
        y /= y.sum(axis=self.axis, keepdims=True)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        xp = self.xp
        y = top[0].data
        dy = top[0].diff
        dot = (dy * y).sum(axis=self.axis, keepdims=True)
        dx = bottom[0].diff
        xp.subtract(dy, dot, out=dx)
        dx *= y
