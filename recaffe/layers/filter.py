"""Filter: keep the items (along axis 0) whose selector value is non-zero.

Math: with ``S = {n : selector[n] != 0}`` (in increasing order),
``top[i] = bottom[i][S]`` for every data bottom ``i``. Backward scatters
``top[i].diff`` back to the selected items of ``bottom[i].diff`` and writes zeros
for the others.

Bottoms: ``K >= 1`` data blobs ``(N, ...)`` followed by the selector, shape
``(N,)`` or ``(N, 1, ..., 1)`` (last bottom).
Tops: ``K`` blobs ``(|S|, ...)`` (one per data bottom). As in Caffe, the top
shapes depend on the selector's values: they are computed from them on every
reshape except the first (setup), which uses ``N``. No selected item at all is a
:class:`~recaffe.errors.DataError` in forward (reshape then gives 0-item tops).
Learnable params: none.
Proto fields: none.
Gradients: to the data bottoms; none to the selector (force_backward skips it,
propagate_down on it is an error).
"""

from __future__ import annotations

import numpy as np

from recaffe import backend
from recaffe.errors import DataError, LayerSetupError, ShapeError
from recaffe.layer import Layer, register_layer


@register_layer
class FilterLayer(Layer):
    type = "Filter"
    min_bottom = 2
    min_top = 1

    def setup(self, bottom, top):
        if len(top) != len(bottom) - 1:
            raise self.error(
                f"needs one top per data bottom ({len(bottom) - 1}: every bottom "
                f"but the last, the selector), got {len(top)} top(s)"
            )
        self._num_bottom = len(bottom)
        self._first_reshape = True
        self._index = None

    def allow_force_backward(self, bottom_index: int) -> bool:
        # The selector holds flags, not a differentiable input.
        return bottom_index != getattr(self, "_num_bottom", 0) - 1

    def reshape(self, bottom, top):
        s = len(bottom) - 1
        sel = bottom[s]
        if sel.num_axes < 1 or any(d != 1 for d in sel.shape[1:]):
            raise self.error(
                f"bottom[{s}] (the selector) must have shape (N,) or (N, 1, ...), "
                f"got {sel.shape}",
                ShapeError,
            )
        n = sel.shape[0]
        for i in range(s):
            if bottom[i].num_axes < 1 or bottom[i].shape[0] != n:
                raise self.error(
                    f"bottom[{i}] must have {n} items on axis 0 like the selector "
                    f"bottom[{s}], got shape {bottom[i].shape}",
                    ShapeError,
                )
        if self._first_reshape:
            # Caffe sizes the tops with all N items at setup, before any data.
            self._first_reshape = False
            count = n
            self._index = None
        else:
            flags = backend.to_host(sel.data).reshape(-1) != 0
            picked = np.flatnonzero(flags)
            # An empty selection is reported by forward, so that a net can still
            # be reshaped before its selector holds data.
            count = int(picked.size)
            self._index = backend.to_device(picked.astype(np.int64), self.xp)
        for t in range(len(top)):
            top[t].reshape((count,) + bottom[t].shape[1:])

    def forward(self, bottom, top):
        xp = self.xp
        idx = self._index
        if idx is not None and idx.size == 0:
            s = len(bottom) - 1
            raise self.error(
                f"the selector bottom[{s}] selects no item (all "
                f"{bottom[s].shape[0]} values are 0); at least one item must pass "
                "the filter",
                DataError,
            )
        for t in range(len(top)):
            if idx is None:
                top[t].data[...] = bottom[t].data
            else:
                xp.take(bottom[t].data, idx, axis=0, out=top[t].data)

    def backward(self, top, propagate_down, bottom):
        s = len(bottom) - 1
        if propagate_down[s]:
            raise self.error(
                f"cannot backpropagate to the selector (bottom[{s}]); set "
                "propagate_down: false for it",
                LayerSetupError,
            )
        idx = self._index
        for t in range(len(top)):
            if not propagate_down[t]:
                continue
            dx = bottom[t].diff
            if idx is None:
                dx[...] = top[t].diff
            else:
                dx[...] = 0
                dx[idx] = top[t].diff
