"""Crop: cut bottom[0] down to bottom[1]'s shape on the axes from ``axis`` on.

Math: for every axis i >= ``axis``, ``top`` takes ``bottom[1].shape[i]``
entries of bottom[0] starting at offset o_i (one ``offset`` for all such
axes, one per axis, or 0 when none is given); axes before ``axis`` are kept
whole. Backward places the top diff at the same window of a zeroed bottom
diff.

Bottoms: ``x`` to crop; ``ref`` whose shape (from ``axis`` on) is the target.
Both have the same number of axes.
Tops: the cropped ``x``.
Learnable params: none.
Proto fields: crop_param { axis offset }.
Gradients: to ``x``; ``ref`` only lends its shape (its gradient is zero).
"""

from __future__ import annotations

from recaffe.errors import ShapeError
from recaffe.layer import Layer, register_layer


@register_layer
class CropLayer(Layer):
    type = "Crop"
    exact_num_bottom = 2
    exact_num_top = 1

    def reshape(self, bottom, top):
        p = self.layer_param.crop_param
        x, ref = bottom[0], bottom[1]
        n = x.num_axes
        if ref.num_axes != n:
            raise self.error(
                f"bottom[1] must have as many axes as bottom[0] ({n}, shape "
                f"{x.shape}), got shape {ref.shape}",
                ShapeError,
            )
        start = self.canonical_axis(p.axis, n, "crop_param.axis")
        offsets = [int(v) for v in p.offset]
        if len(offsets) > 1 and start + len(offsets) != n:
            raise self.error(
                f"number of offset values ({len(offsets)}) must be 1 or the number "
                f"of axes from axis {start} on ({n - start}) for bottom[0] of shape "
                f"{x.shape}"
            )
        shape = []
        window = []
        for i in range(n):
            if i < start:
                shape.append(x.shape[i])
                window.append(slice(None))
                continue
            off = 0
            if len(offsets) == 1:
                off = offsets[0]
            elif offsets:
                off = offsets[i - start]
            size = ref.shape[i]
            if x.shape[i] - off < size:
                raise self.error(
                    f"invalid crop in axis {i}: offset {off} + bottom[1] size {size} "
                    f"exceeds bottom[0] size {x.shape[i]} (shapes {x.shape} and "
                    f"{ref.shape})",
                    ShapeError,
                )
            shape.append(size)
            window.append(slice(off, off + size))
        self.window = tuple(window)
        top[0].reshape(tuple(shape))

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data[self.window]

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            d = bottom[0].diff
            d[...] = 0
            d[self.window] = top[0].diff
        if propagate_down[1]:
            bottom[1].diff[...] = 0
