"""Concat: join several blobs along an axis.

Math: ``top = concatenate(bottoms, axis)``; backward hands each bottom its
section of the top diff.

Bottoms: k >= 1 blobs with the same number of axes and equal sizes on every
axis but ``axis``.
Tops: the concatenation. With one bottom the top shares its data and diff.
Learnable params: none.
Proto fields: concat_param { axis concat_dim (legacy, used if set) }.
Gradients: to every bottom.
"""

from __future__ import annotations

from recaffe.errors import ShapeError
from recaffe.layer import Layer, register_layer


@register_layer
class ConcatLayer(Layer):
    type = "Concat"
    min_bottom = 1
    exact_num_top = 1

    def reshape(self, bottom, top):
        p = self.layer_param.concat_param
        first = bottom[0]
        if p.HasField("concat_dim"):
            axis = int(p.concat_dim)
            if axis >= first.num_axes:
                raise self.error(
                    f"concat_dim {axis} is out of range for bottom[0] of shape "
                    f"{first.shape}",
                    ShapeError,
                )
        else:
            axis = self.canonical_axis(p.axis, first.num_axes, "concat_param.axis")
        shape = list(first.shape)
        bounds = [0, first.shape[axis]]
        for i, b in enumerate(bottom[1:], start=1):
            same = b.num_axes == first.num_axes and all(
                b.shape[j] == first.shape[j] for j in range(first.num_axes) if j != axis
            )
            if not same:
                raise self.error(
                    f"bottom[{i}] must have the shape of bottom[0] {first.shape} on "
                    f"every axis except the concat axis {axis}, got {b.shape}",
                    ShapeError,
                )
            shape[axis] += b.shape[axis]
            bounds.append(bounds[-1] + b.shape[axis])
        self.axis = axis
        self.bounds = bounds
        top[0].reshape(tuple(shape))
        if len(bottom) == 1:
            top[0].share_data(bottom[0])
            top[0].share_diff(bottom[0])

    def _section(self, arr, i):
        lead = (slice(None),) * self.axis
        return arr[lead + (slice(self.bounds[i], self.bounds[i + 1]),)]

    def forward(self, bottom, top):
        if len(bottom) == 1:
            return
        out = top[0].data
        for i, b in enumerate(bottom):
            self._section(out, i)[...] = b.data

    def backward(self, top, propagate_down, bottom):
        if len(bottom) == 1:
            return
        d = top[0].diff
        for i, b in enumerate(bottom):
            if propagate_down[i]:
                b.diff[...] = self._section(d, i)
