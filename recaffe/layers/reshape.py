"""Reshape: give a blob a new shape without touching its data.

Math: axes [axis, axis + num_axes) of the bottom are replaced by
``reshape_param.shape``, where a 0 copies the bottom's dimension at the same
position (counted from ``axis``) and one -1 is inferred so that the count is
unchanged. ``axis`` may be negative (-1 = after the last axis); ``num_axes``
-1 means "through the last axis".

Bottoms: ``x`` (any shape).
Tops: ``x`` reshaped; it shares ``x``'s data and diff (not in place).
Learnable params: none.
Proto fields: reshape_param { shape axis num_axes }.
Gradients: to the bottom (through the shared diff).
"""

from __future__ import annotations

from recaffe.errors import ShapeError
from recaffe.layer import Layer, register_layer


@register_layer
class ReshapeLayer(Layer):
    type = "Reshape"
    exact_num_bottom = 1
    exact_num_top = 1

    def setup(self, bottom, top):
        if top[0] is bottom[0]:
            raise self.error("does not work in place (top and bottom are one blob)")
        dims = [int(d) for d in self.layer_param.reshape_param.shape.dim]
        self.dims = dims
        self.copy_axes = [i for i, d in enumerate(dims) if d == 0]
        inferred = [i for i, d in enumerate(dims) if d == -1]
        if len(inferred) > 1:
            raise self.error(
                f"new shape {dims} contains {len(inferred)} -1 dims; at most one "
                f"may be inferred"
            )
        bad = [d for d in dims if d < -1]
        if bad:
            raise self.error(f"new shape {dims} has invalid dimension(s) {bad}")
        self.inferred_axis = inferred[0] if inferred else -1
        self.constant_count = 1
        for d in dims:
            if d > 0:
                self.constant_count *= d
        if self.layer_param.reshape_param.num_axes < -1:
            raise self.error(
                "reshape_param.num_axes must be >= 0, or -1 for all, got "
                f"{self.layer_param.reshape_param.num_axes}"
            )

    def reshape(self, bottom, top):
        p = self.layer_param.reshape_param
        x = bottom[0]
        n = x.num_axes
        start = p.axis if p.axis >= 0 else n + p.axis + 1
        if not 0 <= start <= n:
            raise self.error(
                f"reshape_param.axis {p.axis} is out of range for bottom[0] of shape "
                f"{x.shape}",
                ShapeError,
            )
        end = n if p.num_axes == -1 else start + p.num_axes
        if end > n:
            raise self.error(
                f"reshape_param.axis {p.axis} + num_axes {p.num_axes} goes past the "
                f"{n} axes of bottom[0] shape {x.shape}",
                ShapeError,
            )
        new = list(self.dims)
        copied = 1
        for i in self.copy_axes:
            if start + i >= n:
                raise self.error(
                    f"new shape {self.dims} has a 0 at position {i} but bottom[0] "
                    f"{x.shape} has no axis {start + i} to copy",
                    ShapeError,
                )
            new[i] = x.shape[start + i]
            copied *= new[i]
        shape = list(x.shape[:start]) + new + list(x.shape[end:])
        if self.inferred_axis >= 0:
            explicit = (self.constant_count * copied * x.count_range(0, start)
                        * x.count_range(end))
            if explicit == 0 or x.count % explicit:
                raise self.error(
                    f"cannot infer the -1 dim of {self.dims}: bottom[0] count "
                    f"{x.count} (shape {x.shape}) is not divisible by {explicit}",
                    ShapeError,
                )
            shape[start + self.inferred_axis] = x.count // explicit
        count = 1
        for d in shape:
            count *= d
        if count != x.count:
            raise self.error(
                f"output shape {tuple(shape)} has {count} elements, but bottom[0] "
                f"{x.shape} has {x.count}",
                ShapeError,
            )
        top[0].reshape(tuple(shape))
        top[0].share_data(x)
        top[0].share_diff(x)

    def forward(self, bottom, top):
        pass  # data are shared

    def backward(self, top, propagate_down, bottom):
        pass  # diff is shared
