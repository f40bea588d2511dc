"""Slice: cut one blob into several along an axis.

Math: with ``slice_point`` p_1 < ... < p_{k-1} (k = number of tops), top j is
``x[..., p_j:p_{j+1}, ...]`` along ``axis`` (p_0 = 0, p_k = dim); without
slice points the axis is split into k equal parts. Backward writes each top's
diff into its section of the bottom diff.

Bottoms: ``x`` (any shape).
Tops: k >= 1 blobs, equal to ``x`` except along ``axis``. With one top the
data are copied.
Learnable params: none.
Proto fields: slice_param { axis slice_point slice_dim (legacy, used if set) }.
Gradients: to the bottom.
"""

from __future__ import annotations

from recaffe.errors import ShapeError
from recaffe.layer import Layer, register_layer


@register_layer
class SliceLayer(Layer):
    type = "Slice"
    exact_num_bottom = 1
    min_top = 1

    def reshape(self, bottom, top):
        p = self.layer_param.slice_param
        x = bottom[0]
        if p.HasField("slice_dim"):
            axis = int(p.slice_dim)
            if axis >= x.num_axes:
                raise self.error(
                    f"slice_dim {axis} is out of range for bottom[0] of shape "
                    f"{x.shape}",
                    ShapeError,
                )
        else:
            axis = self.canonical_axis(p.axis, x.num_axes, "slice_param.axis")
        dim = x.shape[axis]
        ntop = len(top)
        points = [int(v) for v in p.slice_point]
        if points:
            if len(points) != ntop - 1:
                raise self.error(
                    f"needs one slice_point fewer than tops: {ntop} top(s) need "
                    f"{ntop - 1} slice_point(s), got {len(points)} ({points})"
                )
            prev = 0
            for v in points:
                if v <= prev or v >= dim:
                    raise self.error(
                        f"slice_point values must be strictly increasing and within "
                        f"(0, {dim}) (axis {axis} of bottom[0] shape {x.shape}), got "
                        f"{points}",
                        ShapeError,
                    )
                prev = v
            bounds = [0, *points, dim]
        else:
            if dim % ntop:
                raise self.error(
                    f"number of tops ({ntop}) must evenly divide the slice axis "
                    f"{axis} (size {dim}) of bottom[0] shape {x.shape}; give "
                    f"slice_point values for an uneven split",
                    ShapeError,
                )
            step = dim // ntop
            bounds = [j * step for j in range(ntop + 1)]
        self.axis = axis
        self.bounds = bounds
        for j, t in enumerate(top):
            shape = list(x.shape)
            shape[axis] = bounds[j + 1] - bounds[j]
            t.reshape(tuple(shape))

    def _sections(self, arr):
        lead = (slice(None),) * self.axis
        for j in range(len(self.bounds) - 1):
            yield j, arr[lead + (slice(self.bounds[j], self.bounds[j + 1]),)]

    def forward(self, bottom, top):
        for j, sec in self._sections(bottom[0].data):
            top[j].data[...] = sec

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        for j, sec in self._sections(bottom[0].diff):
            sec[...] = top[j].diff
