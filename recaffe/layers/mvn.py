"""MVN: mean-variance normalization.

Math: per group (each (item, channel) pair, or each item with
``across_channels``) of ``dim`` elements: ``y = x - mean(x)``; with
``normalize_variance``, ``y = (x - mean(x)) / (std(x) + eps)`` where
``std = sqrt(mean((x - mean)^2))``. Backward as Caffe computes it:
``dx = (dy - mean(dy) - y * mean(dy * y)) / (std + eps)`` (exact for eps -> 0),
or ``dx = dy - mean(dy)`` without variance normalization.

Bottoms: ``x`` of shape (N, C, ...) (at least 1 axis).
Tops: ``y``, same shape.
Learnable params: none.
Proto fields: mvn_param { normalize_variance across_channels eps }.
Gradients: to the bottom.
"""

from __future__ import annotations

from recaffe.errors import ShapeError
from recaffe.layer import Layer, register_layer


@register_layer
class MVNLayer(Layer):
    type = "MVN"
    exact_num_bottom = 1
    exact_num_top = 1

    _std = None
    _y = None

    def setup(self, bottom, top):
        p = self.layer_param.mvn_param
        self.normalize_variance = bool(p.normalize_variance)
        self.across_channels = bool(p.across_channels)
        self.eps = float(p.eps)

    def reshape(self, bottom, top):
        b = bottom[0]
        if b.num_axes < 1:
            raise self.error(f"bottom[0] needs at least 1 axis, got shape {b.shape}",
                             ShapeError)
        if self.across_channels or b.num_axes < 2:
            self.groups = b.shape[0]
        else:
            self.groups = b.shape[0] * b.shape[1]
        self.dim = b.count // self.groups if self.groups else 0
        if top[0] is not b:
            top[0].reshape(b.shape)

    def forward(self, bottom, top):
        xp = self.xp
        x = bottom[0].data.reshape(self.groups, self.dim)
        y = top[0].data.reshape(self.groups, self.dim)
        xp.subtract(x, x.mean(axis=1, keepdims=True), out=y)
        if self.normalize_variance:
            std = xp.sqrt((y * y).mean(axis=1, keepdims=True))
            std += self.eps
            y /= std
            self._std = std
            buf = self._y
            if buf is None or buf.shape != y.shape or buf.dtype != y.dtype:
                buf = self._y = xp.empty_like(y)
            buf[...] = y

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        xp = self.xp
        dy = top[0].diff.reshape(self.groups, self.dim)
        dx = bottom[0].diff.reshape(self.groups, self.dim)
        mean_dy = dy.mean(axis=1, keepdims=True)
        if not self.normalize_variance:
            xp.subtract(dy, mean_dy, out=dx)
            return
        y = self._y
        t = y * (dy * y).mean(axis=1, keepdims=True)
        t += mean_dy
        xp.subtract(dy, t, out=dx)
        dx /= self._std
