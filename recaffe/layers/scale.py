"""Scale: multiply by a scale broadcast over the axes of the bottom it spans.

Math: the scale ``s`` has shape ``x.shape[axis:axis + s.ndim]``; viewing ``x`` as
(outer, dim, inner) with ``dim = s.size``: ``y[o, d, i] = x[o, d, i] * s[d]``
(``+ b[d]`` with ``bias_term``); ``dx = dy * s``,
``ds[d] = sum_{o, i} dy[o, d, i] * x[o, d, i]``, ``db[d] = sum_{o, i} dy[o, d, i]``.
A scalar scale (0 axes) multiplies every element.

Bottoms: ``x``, and optionally ``s`` (bottom[1]) instead of a learned scale.
Tops: ``y``, shape of ``x`` (may be in place: a copy of ``x`` is kept for ``ds``).
Learnable params: ``s`` (one bottom only) of shape ``x.shape[axis:axis+num_axes]``
(``num_axes: -1`` means to the last axis, 0 a scalar); then ``b`` of the same
shape as the scale if ``bias_term``.
Proto fields: scale_param { axis num_axes filler (absent => constant 1)
bias_term bias_filler (absent => constant 0) }.
Gradients: to both bottoms, or to ``x`` and the learned scale; to the bias.
"""

from __future__ import annotations

from recaffe.errors import ShapeError
from recaffe.filler import filler_or
from recaffe.layer import Layer, register_layer
from recaffe.layers.bias import broadcast_dims, param_shape


@register_layer
class ScaleLayer(Layer):
    type = "Scale"
    min_bottom = 1
    max_bottom = 2
    exact_num_top = 1

    _saved = None

    def setup(self, bottom, top):
        p = self.layer_param.scale_param
        self.bias_term = bool(p.bias_term)
        self.learned_scale = len(bottom) == 1
        if self.blobs:
            return
        if self.learned_scale:
            shape = param_shape(self, bottom[0], p.axis, p.num_axes, "scale_param")
            self.make_param_blob(shape, filler_or(p, "filler", "constant", 1.0))
        else:
            shape = tuple(bottom[1].shape)
        if self.bias_term:
            self.make_param_blob(shape, filler_or(p, "bias_filler", "constant", 0.0))

    def _scale(self, bottom):
        return self.blobs[0] if self.learned_scale else bottom[1]

    def reshape(self, bottom, top):
        s = self._scale(bottom)
        what = "the scale blob" if self.learned_scale else "bottom[1]"
        self.dims = broadcast_dims(
            self, bottom[0], s.shape, self.layer_param.scale_param.axis, what
        )
        if self.bias_term and self.blobs[-1].count != s.count:
            raise self.error(
                f"the bias blob of shape {self.blobs[-1].shape} does not match the "
                f"scale of shape {s.shape}",
                ShapeError,
            )
        if top[0] is not bottom[0]:
            top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        xp = self.xp
        outer, dim, inner = self.dims
        x = bottom[0].data
        if top[0] is bottom[0]:
            # In place: keep x for the scale gradient.
            buf = self._saved
            if buf is None or buf.shape != x.shape or buf.dtype != x.dtype:
                buf = self._saved = xp.empty_like(x)
            buf[...] = x
        s = self._scale(bottom).data.reshape(1, dim, 1)
        y = top[0].data.reshape(outer, dim, inner)
        xp.multiply(x.reshape(outer, dim, inner), s, out=y)
        if self.bias_term:
            y += self.blobs[-1].data.reshape(1, dim, 1)

    def backward(self, top, propagate_down, bottom):
        outer, dim, inner = self.dims
        dy = top[0].diff.reshape(outer, dim, inner)
        if self.bias_term and self.param_propagate_down[-1]:
            b = self.blobs[-1]
            b.diff[...] += dy.sum(axis=(0, 2)).reshape(b.shape)
        s = self._scale(bottom)
        want_s = (
            self.param_propagate_down[0] if self.learned_scale else propagate_down[1]
        )
        if want_s:
            x = self._saved if top[0] is bottom[0] else bottom[0].data
            g = (dy * x.reshape(outer, dim, inner)).sum(axis=(0, 2)).reshape(s.shape)
            if self.learned_scale:
                s.diff[...] += g
            else:
                s.diff[...] = g
        if propagate_down[0]:
            dx = bottom[0].diff.reshape(outer, dim, inner)
            self.xp.multiply(dy, s.data.reshape(1, dim, 1), out=dx)
