"""Numerical gradient checking, following Caffe's GradientChecker.

The objective is a fixed random projection of the tops, ``sum_i <R_i, top_i>``
(Caffe's exhaustive mode checks one top element at a time; a random projection
checks all of them at once with the same power to find a wrong gradient, at a
fraction of the cost). Each checked element ``x`` is perturbed by ``+-h``; the
estimate ``(f(x+h) - f(x-h)) / 2h`` must match the analytic gradient:

    |analytic - estimate| <= threshold * max(|analytic|, |estimate|, 1)

Random layers (Dropout) see the same random numbers in every forward: the
backend generator is reseeded before each one. Elements whose input lies within
``kink_range`` of ``kink`` are skipped (non-differentiable points of ReLU-like
layers).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recaffe import backend
from recaffe.backend.synced import runs_on_device


class GradientCheckError(AssertionError):
    """The analytic gradient disagrees with the numerical estimate."""


def _objective(layer, bottom, top, weights, seed) -> float:
    backend.set_random_seed(seed)
    layer.Forward(bottom, top)
    total = 0.0
    for w, t in zip(weights, top, strict=True):
        total += float((w * backend.to_host(t.data)).sum())
    return total


@runs_on_device  # perturbs and reads the arrays the layer computes on
def check_gradient(
    layer,
    bottom: Sequence,
    top: Sequence,
    check_bottom: int | Sequence[int] | None = -1,
    *,
    check_params: bool = True,
    stepsize: float = 1e-2,
    threshold: float = 1e-3,
    seed: int = 1701,
    kink: float = 0.0,
    kink_range: float = -1.0,
    top_mask: Sequence[bool] | None = None,
    setup: bool = True,
) -> int:
    """Check ``layer``'s backward against central differences.

    Args:
        layer: the layer (its blobs should be float64 for a tight check).
        bottom, top: blob lists; set up here unless ``setup=False``.
        check_bottom: -1 for every bottom, an index, a list of indices, or None.
        check_params: also check the layer's learnable blobs.
        top_mask: which tops enter the objective (default all).
    Returns:
        the number of elements checked.
    Raises:
        GradientCheckError on the first mismatch.
    """
    if setup:
        backend.set_random_seed(seed)
        layer.SetUp(bottom, top)
    if check_bottom is None:
        bottoms_to_check: list[int] = []
    elif isinstance(check_bottom, int):
        bottoms_to_check = list(range(len(bottom))) if check_bottom < 0 else [
            check_bottom
        ]
    else:
        bottoms_to_check = list(check_bottom)
    # Establish top shapes, then draw the projection.
    _objective(layer, bottom, top, [0.0] * len(top), seed)
    rng = np.random.default_rng(seed)
    weights = []
    for i, t in enumerate(top):
        use = top_mask is None or top_mask[i]
        w = rng.standard_normal(t.shape) if use else np.zeros(t.shape)
        weights.append(w)

    blobs = [(f"bottom[{i}]", bottom[i]) for i in bottoms_to_check]
    if check_params:
        blobs += [(f"param[{j}]", b) for j, b in enumerate(layer.blobs)]
    # Analytic gradients.
    for b in layer.blobs:
        b.diff[...] = 0
    _objective(layer, bottom, top, weights, seed)
    for w, t in zip(weights, top, strict=True):
        t.diff[...] = backend.to_device(w.astype(t.dtype), t._xp)
    propagate_down = [i in bottoms_to_check for i in range(len(bottom))]
    layer.Backward(top, propagate_down, bottom)
    analytic = [backend.to_host(b.diff).copy() for _, b in blobs]

    checked = 0
    for (label, blob), grad in zip(blobs, analytic, strict=True):
        flat = blob.data.reshape(-1)
        gflat = grad.reshape(-1)
        for k in range(blob.count):
            x = float(flat[k])
            if kink_range >= 0 and abs(abs(x) - kink) <= kink_range:
                continue
            flat[k] = x + stepsize
            fp = _objective(layer, bottom, top, weights, seed)
            flat[k] = x - stepsize
            fm = _objective(layer, bottom, top, weights, seed)
            flat[k] = x
            est = (fp - fm) / (2.0 * stepsize)
            a = float(gflat[k])
            scale = max(abs(a), abs(est), 1.0)
            if abs(a - est) > threshold * scale:
                raise GradientCheckError(
                    f"{layer.type} layer '{layer.name}': gradient of {label} element "
                    f"{np.unravel_index(k, blob.shape)} is {a:.6g}, numerical "
                    f"estimate {est:.6g} (threshold {threshold} x {scale:.3g})"
                )
            checked += 1
    return checked
