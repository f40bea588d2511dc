"""Flatten: merge the axes ``axis`` .. ``end_axis`` (inclusive) into one.

Math: top shape = ``shape[:axis] + (prod(shape[axis:end_axis + 1]),) +
shape[end_axis + 1:]``; data unchanged.

Bottoms: ``x`` (any shape).
Tops: ``x`` flattened; it shares ``x``'s data and diff (not in place).
Learnable params: none.
Proto fields: flatten_param { axis end_axis }.
Gradients: to the bottom (through the shared diff).
"""

from __future__ import annotations

from recaffe.layer import Layer, register_layer


@register_layer
class FlattenLayer(Layer):
    type = "Flatten"
    exact_num_bottom = 1
    exact_num_top = 1

    def setup(self, bottom, top):
        if top[0] is bottom[0]:
            raise self.error("does not work in place (top and bottom are one blob)")

    def reshape(self, bottom, top):
        p = self.layer_param.flatten_param
        x = bottom[0]
        start = self.canonical_axis(p.axis, x.num_axes, "flatten_param.axis")
        end = self.canonical_axis(p.end_axis, x.num_axes, "flatten_param.end_axis")
        if end < start:
            raise self.error(
                f"flatten_param.end_axis {p.end_axis} (axis {end}) comes before axis "
                f"{p.axis} (axis {start}) for bottom[0] of shape {x.shape}"
            )
        shape = x.shape[:start] + (x.count_range(start, end + 1),) + x.shape[end + 1:]
        top[0].reshape(shape)
        top[0].share_data(x)
        top[0].share_diff(x)

    def forward(self, bottom, top):
        pass  # data are shared

    def backward(self, top, propagate_down, bottom):
        pass  # diff is shared
