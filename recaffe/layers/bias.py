"""Bias: add a bias broadcast over the axes of the bottom it spans.

Math: the bias ``b`` has shape ``x.shape[axis:axis + b.ndim]``; viewing ``x`` as
(outer, dim, inner) with ``dim = b.size``: ``y[o, d, i] = x[o, d, i] + b[d]``;
``dx = dy``, ``db[d] = sum_{o, i} dy[o, d, i]``. A scalar bias (0 axes) adds to
every element.

Bottoms: ``x``, and optionally ``b`` (bottom[1]) instead of a learned bias.
Tops: ``y``, shape of ``x`` (may be in place).
Learnable params (one bottom only): ``b`` of shape ``x.shape[axis:axis+num_axes]``
(``num_axes: -1`` means to the last axis, 0 a scalar).
Proto fields: bias_param { axis num_axes filler (absent => constant 0) }.
Gradients: to both bottoms, or to ``x`` and the learned bias.
"""

from __future__ import annotations

from recaffe.errors import ShapeError
from recaffe.filler import filler_or
from recaffe.layer import Layer, register_layer


def param_shape(layer: Layer, bottom0, axis_field: int, num_axes: int, what: str):
    """Shape of a learned broadcast parameter (Scale/Bias) at setup."""
    axis = layer.canonical_axis(axis_field, bottom0.num_axes)
    if num_axes < -1:
        raise layer.error(
            f"{what}.num_axes must be >= 0, or -1 for all axes from axis on; got "
            f"{num_axes}"
        )
    if num_axes >= 0 and bottom0.num_axes < axis + num_axes:
        raise layer.error(
            f"{what} with axis {axis} and num_axes {num_axes} extends past the "
            f"{bottom0.num_axes} axes of bottom[0] {bottom0.shape}",
            ShapeError,
        )
    end = None if num_axes == -1 else axis + num_axes
    return bottom0.shape[axis:end]


def broadcast_dims(layer: Layer, bottom0, pshape, axis_field: int, what: str):
    """(outer, dim, inner) for a parameter of shape ``pshape``, checked."""
    nax = len(pshape)
    # A scalar broadcasts the same from any axis; axis 0 avoids a bad-axis error.
    axis = 0 if nax == 0 else layer.canonical_axis(axis_field, bottom0.num_axes)
    shape = bottom0.shape
    if shape[axis:axis + nax] != tuple(pshape) or len(shape) < axis + nax:
        raise layer.error(
            f"{what} of shape {tuple(pshape)} does not match bottom[0] shape {shape} "
            f"from axis {axis} (need bottom[0].shape[{axis}:{axis + nax}] == "
            f"{tuple(pshape)})",
            ShapeError,
        )
    outer = bottom0.count_range(0, axis)
    dim = bottom0.count_range(axis, axis + nax)
    inner = bottom0.count_range(axis + nax)
    return outer, dim, inner


@register_layer
class BiasLayer(Layer):
    type = "Bias"
    min_bottom = 1
    max_bottom = 2
    exact_num_top = 1

    def setup(self, bottom, top):
        p = self.layer_param.bias_param
        if len(bottom) == 1 and not self.blobs:
            shape = param_shape(self, bottom[0], p.axis, p.num_axes, "bias_param")
            self.make_param_blob(shape, filler_or(p, "filler", "constant", 0.0))

    def reshape(self, bottom, top):
        b = bottom[1] if len(bottom) > 1 else self.blobs[0]
        what = "bottom[1]" if len(bottom) > 1 else "the bias blob"
        self.dims = broadcast_dims(
            self, bottom[0], b.shape, self.layer_param.bias_param.axis, what
        )
        if top[0] is not bottom[0]:
            top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        xp = self.xp
        b = bottom[1] if len(bottom) > 1 else self.blobs[0]
        outer, dim, inner = self.dims
        y = top[0].data.reshape(outer, dim, inner)
        xp.add(bottom[0].data.reshape(outer, dim, inner), b.data.reshape(1, dim, 1),
               out=y)

    def backward(self, top, propagate_down, bottom):
        outer, dim, inner = self.dims
        dy = top[0].diff
        if len(bottom) > 1:
            if propagate_down[1]:
                bottom[1].diff[...] = dy.reshape(outer, dim, inner).sum(
                    axis=(0, 2)
                ).reshape(bottom[1].shape)
        elif self.param_propagate_down[0]:
            self.blobs[0].diff[...] += dy.reshape(outer, dim, inner).sum(
                axis=(0, 2)
            ).reshape(self.blobs[0].shape)
        if propagate_down[0] and bottom[0] is not top[0]:
            bottom[0].diff[...] = dy
