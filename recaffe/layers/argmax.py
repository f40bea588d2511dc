"""ArgMax: indices (and optionally values) of the ``top_k`` largest entries.

Math: without ``axis``, each item (axis 0) is flattened and its ``top_k``
largest entries are found, in decreasing order (ties: the larger index first, as
Caffe's sort of (value, index) pairs gives). With ``axis``, the search runs
along that axis.

Bottoms: ``x`` of any shape.
Tops: without ``axis``: ``(N, 1, top_k)`` indices, or ``(N, 2, top_k)``
[indices; values] with ``out_max_val`` (padded with trailing 1s to the bottom's
number of axes when it has more than 3); with ``axis``: the bottom shape with
``shape[axis] = top_k``, holding indices, or values with ``out_max_val``.
Learnable params: none.
Proto fields: argmax_param { out_max_val top_k axis }.
Gradients: none (indices are not differentiable).
"""

from __future__ import annotations

from recaffe.errors import ShapeError
from recaffe.layer import Layer, register_layer


@register_layer
class ArgMaxLayer(Layer):
    type = "ArgMax"
    exact_num_bottom = 1
    exact_num_top = 1

    def setup(self, bottom, top):
        p = self.layer_param.argmax_param
        self.out_max_val = bool(p.out_max_val)
        self.top_k = int(p.top_k)
        if self.top_k < 1:
            raise self.error(f"argmax_param.top_k must be >= 1, got {self.top_k}")
        self.has_axis = p.HasField("axis")

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        k = self.top_k
        if self.has_axis:
            self.axis = self.canonical_axis(self.layer_param.argmax_param.axis,
                                            len(shape))
            if shape[self.axis] < k:
                raise self.error(
                    f"top_k {k} exceeds bottom[0].shape[{self.axis}] = "
                    f"{shape[self.axis]} (bottom shape {shape})",
                    ShapeError,
                )
            out = list(shape)
            out[self.axis] = k
        else:
            if len(shape) < 1 or bottom[0].count_range(1) < k:
                raise self.error(
                    f"top_k {k} exceeds the {bottom[0].count_range(1)} entries per "
                    f"item of bottom[0] {shape}",
                    ShapeError,
                )
            out = [1] * max(3, len(shape))
            out[0] = shape[0]
            out[1] = 2 if self.out_max_val else 1
            out[2] = k
        top[0].reshape(tuple(out))

    def forward(self, bottom, top):
        xp = self.xp
        x = bottom[0].data
        k = self.top_k
        if self.has_axis:
            xa = xp.moveaxis(x, self.axis, -1)
        else:
            xa = x.reshape(x.shape[0], -1)
        # Ascending stable sort, reversed: decreasing values, ties larger index
        # first.
        order = xp.argsort(xa, axis=-1, kind="stable")[..., ::-1][..., :k]
        vals = xp.take_along_axis(xa, order, axis=-1)
        y = top[0].data
        if self.has_axis:
            res = vals if self.out_max_val else order
            y[...] = xp.moveaxis(res, -1, self.axis)
        else:
            y2 = y.reshape(x.shape[0], -1)
            y2[:, :k] = order
            if self.out_max_val:
                y2[:, k:2 * k] = vals

    def allow_force_backward(self, bottom_index: int) -> bool:
        # No gradient exists; force_backward must not ask for one (Caffe would
        # abort in backward).
        return False

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            raise self.error("has no gradient (its outputs are indices)")
