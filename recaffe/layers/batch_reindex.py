"""BatchReindex: gather items of a batch by index along axis 0.

Math: ``top[m] = data[permut[m]]`` for ``m = 0 .. M-1``. Backward accumulates
(scatter-adds) ``top.diff[m]`` into ``data.diff[permut[m]]`` (an index used twice
receives both gradients; an unused one receives 0).

Bottoms: ``data`` ``(N, ...)``; ``permut`` ``(M,)`` with integer values in
``[0, N)`` (stored as floats, as every blob).
Tops: ``(M, ...)``.
Learnable params: none.
Proto fields: none.
Gradients: to ``data``; none to ``permut`` (force_backward skips it,
propagate_down on it is an error).
"""

from __future__ import annotations

import numpy as np

from recaffe import backend
from recaffe.errors import DataError, LayerSetupError, ShapeError
from recaffe.layer import Layer, register_layer


@register_layer
class BatchReindexLayer(Layer):
    type = "BatchReindex"
    exact_num_bottom = 2
    exact_num_top = 1

    def allow_force_backward(self, bottom_index: int) -> bool:
        # The indices are not a differentiable input.
        return bottom_index != 1

    def reshape(self, bottom, top):
        if bottom[1].num_axes != 1:
            raise self.error(
                f"bottom[1] (permut) must have 1 axis (M,), got shape "
                f"{bottom[1].shape}",
                ShapeError,
            )
        if bottom[0].num_axes < 1:
            raise self.error(
                "bottom[0] (data) must have at least 1 axis, got shape ()",
                ShapeError,
            )
        top[0].reshape((bottom[1].shape[0],) + bottom[0].shape[1:])

    def _indices(self, bottom):
        xp = self.xp
        v = bottom[1].data
        n = bottom[0].shape[0]
        # Checked on the floats before the cast: NaN, inf and fractions have no
        # faithful integer value.
        bad = ~((v >= 0) & (v < n) & (v == xp.floor(v)))
        if bool(bad.any()):
            k = int(xp.argmax(bad))
            raise self.error(
                f"bottom[1] (permut) value {float(v[k])!r} at position {k} is not "
                f"an integer index in [0, {n}) (bottom[0] has {n} items)",
                DataError,
            )
        return v.astype(np.int64)

    def forward(self, bottom, top):
        xp = self.xp
        idx = self._indices(bottom)
        x = bottom[0].data
        y = top[0].data
        if y.size:
            xp.take(x, idx, axis=0, out=y)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[1]:
            raise self.error(
                "cannot backpropagate to the indices (bottom[1], permut); set "
                "propagate_down: false for it",
                LayerSetupError,
            )
        if not propagate_down[0]:
            return
        dx = bottom[0].diff
        dx[...] = 0
        if top[0].count:
            backend.scatter_add(dx, self._indices(bottom), top[0].diff)
