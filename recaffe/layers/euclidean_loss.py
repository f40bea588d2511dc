"""EuclideanLoss: half the summed squared difference, divided by the batch size.

Math: ``loss = sum((a - b)^2) / (2 * N)`` where N = shape[0] of ``a`` (Caffe
divides by the first axis only, not by the element count).
Gradient: ``d a = (a - b) * top.diff / N``, ``d b = -(a - b) * top.diff / N``.

Bottoms: ``a`` (N, ...) and ``b`` (N, ...) with the same count.
Tops: the loss, a 0-axis scalar.
Learnable params: none.
Proto fields: none beyond loss_weight.
Gradients: to both bottoms (``force_backward`` reaches ``b`` too).
"""

from __future__ import annotations

from recaffe.backend import blas
from recaffe.errors import ShapeError
from recaffe.layer import LossLayer, register_layer


@register_layer
class EuclideanLossLayer(LossLayer):
    type = "EuclideanLoss"

    def allow_force_backward(self, bottom_index: int) -> bool:
        return True

    def reshape(self, bottom, top):
        self.check_batch(bottom)
        if bottom[0].count != bottom[1].count:
            raise self.error(
                f"bottom[0] and bottom[1] must have the same count, got shapes "
                f"{bottom[0].shape} and {bottom[1].shape}",
                ShapeError,
            )
        self.num = bottom[0].shape[0] if bottom[0].num_axes else 1
        if not hasattr(self, "_diff") or self._diff.shape != bottom[0].shape or (
            self._diff.dtype != bottom[0].data.dtype
        ):
            self._diff = self.xp.empty(bottom[0].shape, dtype=bottom[0].data.dtype)
        top[0].reshape(())

    def forward(self, bottom, top):
        xp = self.xp
        d = self._diff
        xp.subtract(bottom[0].data, bottom[1].data.reshape(d.shape), out=d)
        flat = d.reshape(-1)
        top[0].data[...] = blas.vdot(flat, flat, xp) / (2.0 * self.num)

    def backward(self, top, propagate_down, bottom):
        xp = self.xp
        scale = top[0].diff / self.num
        for i, sign in ((0, 1.0), (1, -1.0)):
            if propagate_down[i]:
                out = bottom[i].diff.reshape(self._diff.shape)
                xp.multiply(self._diff, sign * scale, out=out)
