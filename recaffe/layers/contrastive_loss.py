"""ContrastiveLoss: the siamese margin loss on pairs of feature vectors.

Math: with ``a`` and ``b`` viewed as (N, C), ``d_n = ||a_n - b_n||_2`` and the
integer similarity label ``y_n`` (nonzero = similar, Caffe's int cast),

    loss = sum_n [ y_n d_n^2 + (1 - y_n) max(margin - d_n, 0)^2 ] / (2 N)

With ``legacy_version: true`` the dissimilar term is ``max(margin - d_n^2, 0)``
(not squared).
Gradient (Caffe's formula), ``alpha = sign * top.diff / N`` with sign +1 for
``a`` and -1 for ``b``: similar pairs get ``alpha (a - b)``; dissimilar pairs get
``beta (a - b)`` when ``mdist > 0`` else 0, where ``mdist = margin - d`` and
``beta = -alpha mdist / (d + 1e-4)`` (legacy: ``mdist = margin - d^2``,
``beta = -alpha``). The 1e-4 keeps the gradient finite when ``d`` is 0.

Bottoms: ``a`` (N, C) or (N, C, 1, 1); ``b`` of the same shape; ``y`` with N
elements (e.g. (N,) or (N, 1, 1, 1)).
Tops: the loss, a 0-axis scalar.
Learnable params: none.
Proto fields: contrastive_loss_param { margin legacy_version }.
Gradients: to ``a`` and ``b`` (``force_backward`` reaches both); never to
``y`` (a requested gradient to ``y`` is written as zeros).
"""

from __future__ import annotations

from recaffe.errors import ShapeError
from recaffe.layer import LossLayer, register_layer

#: Caffe adds this to the distance before dividing by it in the backward pass.
DIST_EPS = 1e-4


@register_layer
class ContrastiveLossLayer(LossLayer):
    type = "ContrastiveLoss"
    exact_num_bottom = 3

    def allow_force_backward(self, bottom_index: int) -> bool:
        return bottom_index != 2

    def setup(self, bottom, top):
        p = self.layer_param.contrastive_loss_param
        self.margin = float(p.margin)
        self.legacy = bool(p.legacy_version)

    def reshape(self, bottom, top):
        self.check_batch(bottom)
        a = bottom[0]
        if a.num_axes < 1:
            raise self.error(f"bottom[0] must have a batch axis, got shape {a.shape}",
                             ShapeError)
        if any(s != 1 for s in a.shape[2:]):
            raise self.error(
                f"bottom[0] must have shape (N, C) or (N, C, 1, 1), got {a.shape}",
                ShapeError,
            )
        self.check_same_shape(bottom, 0, 1)
        self.num = a.shape[0]
        self.dim = a.count // max(self.num, 1)
        if bottom[2].count != self.num:
            raise self.error(
                f"bottom[2] (similarity labels) must have one label per pair "
                f"({self.num}), got shape {bottom[2].shape}",
                ShapeError,
            )
        dt = a.data.dtype
        if (not hasattr(self, "_diff") or self._diff.shape != (self.num, self.dim)
                or self._diff.dtype != dt):
            self._diff = self.xp.empty((self.num, self.dim), dtype=dt)
        top[0].reshape(())

    def _similar(self, bottom):
        xp = self.xp
        # Caffe casts the label to int: 0.7 is dissimilar, 2 is similar.
        return bottom[2].data.reshape(-1).astype(xp.int64) != 0

    def forward(self, bottom, top):
        xp = self.xp
        d = self._diff
        xp.subtract(bottom[0].data.reshape(d.shape), bottom[1].data.reshape(d.shape),
                    out=d)
        dist_sq = (d * d).sum(axis=1)
        similar = self._similar(bottom)
        if self.legacy:
            far = xp.maximum(self.margin - dist_sq, 0)
        else:
            far = xp.maximum(self.margin - xp.sqrt(dist_sq), 0)
            far = far * far
        total = xp.where(similar, dist_sq, far).sum()
        top[0].data[...] = total / (2.0 * max(self.num, 1))

    def backward(self, top, propagate_down, bottom):
        xp = self.xp
        if propagate_down[2]:
            bottom[2].diff[...] = 0
        if not (propagate_down[0] or propagate_down[1]):
            return
        d = self._diff
        dist_sq = (d * d).sum(axis=1)
        similar = self._similar(bottom)
        if self.legacy:
            mdist = self.margin - dist_sq
            beta = xp.full(dist_sq.shape, -1.0, dtype=d.dtype)
        else:
            dist = xp.sqrt(dist_sq)
            mdist = self.margin - dist
            beta = -mdist / (dist + DIST_EPS)
        # Per-pair coefficient of (a - b), before alpha = sign * top.diff / N.
        coef = xp.where(similar, 1.0, xp.where(mdist > 0, beta, 0.0)).astype(d.dtype)
        base = top[0].diff / max(self.num, 1)
        for i, sign in ((0, 1.0), (1, -1.0)):
            if propagate_down[i]:
                out = bottom[i].diff.reshape(d.shape)
                xp.multiply(d, (sign * base) * coef[:, None], out=out)
