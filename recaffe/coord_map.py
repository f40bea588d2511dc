"""Coordinate maps between NetSpec tops, and automatic ``Crop`` (pycaffe's module).

A spatial layer maps output coordinates to input coordinates affinely per
axis: ``x_in = a * x_out + b``. Composing these maps along the NetSpec graph
gives the map between two tops, and :func:`crop` builds the ``Crop`` layer
that aligns one top to another (as FCN-style nets need). Only ``fn.params`` of
the NetSpec functions is read; nothing is serialized.

Maps are ``(axis, a, b)``: ``axis`` is the first spatial axis (``None`` when a
layer works on any axis), ``a`` and ``b`` numpy arrays (one entry per spatial
axis, or scalars).
"""

from __future__ import annotations

import numpy as np

from recaffe.net_spec import layers as L

#: Layers that keep coordinates unchanged.
PASS_THROUGH_LAYERS = [
    "AbsVal", "BatchNorm", "Bias", "BNLL", "Dropout", "Eltwise", "ELU", "Log", "LRN",
    "Exp", "MVN", "Power", "ReLU", "PReLU", "Scale", "Sigmoid", "Split", "TanH",
    "Threshold",
]


class UndefinedMapException(Exception):
    """The layer has no coordinate map (e.g. InnerProduct)."""


class AxisMismatchException(Exception):
    """Two maps act on different axes and cannot be composed."""


def conv_params(fn):
    """(axis, stride, effective kernel extent, pad) of a conv-like function."""
    params = fn.params.get("convolution_param", fn.params)
    axis = params.get("axis", 1)
    ks = np.array(params["kernel_size"], ndmin=1)
    dilation = np.array(params.get("dilation", 1), ndmin=1)
    legacy = {"pad_h", "pad_w", "kernel_h", "kernel_w", "stride_h", "stride_w"}
    if legacy & set(params):
        raise AssertionError("cropping does not support legacy _h/_w params")
    return (axis, np.array(params.get("stride", 1), ndmin=1),
            (ks - 1) * dilation + 1, np.array(params.get("pad", 0), ndmin=1))


def crop_params(fn):
    """(axis, offset) of a Crop function (default axis 2: spatial of NCHW)."""
    params = fn.params.get("crop_param", fn.params)
    return params.get("axis", 2), np.array(params.get("offset", 0), ndmin=1)


def coord_map(fn):
    """The (axis, a, b) map of one function's output onto its input."""
    if fn.type_name in ("Convolution", "Pooling", "Im2col"):
        axis, stride, ks, pad = conv_params(fn)
        return axis, 1 / stride, (pad - (ks - 1) / 2) / stride
    if fn.type_name == "Deconvolution":
        axis, stride, ks, pad = conv_params(fn)
        return axis, stride, (ks - 1) / 2 - pad
    if fn.type_name in PASS_THROUGH_LAYERS:
        return None, 1, 0
    if fn.type_name == "Crop":
        axis, offset = crop_params(fn)
        return axis - 1, 1, -offset  # the map's axis is the last non-spatial one
    raise UndefinedMapException(fn.type_name)


def compose(base_map, next_map):
    """The map of applying ``base_map`` after ``next_map``."""
    ax1, a1, b1 = base_map
    ax2, a2, b2 = next_map
    if ax1 is None:
        ax = ax2
    elif ax2 is None or ax1 == ax2:
        ax = ax1
    else:
        raise AxisMismatchException(f"axis {ax1} vs {ax2}")
    return ax, a1 * a2, a1 * b2 + b1


def inverse(cmap):
    ax, a, b = cmap
    return ax, 1 / a, -b / a


def _bottoms(top):
    inputs = top.fn.inputs
    # A Crop's second bottom only supplies the reference shape.
    return inputs[:1] if top.fn.type_name == "Crop" else inputs


def _walk_back(start, visit):
    maps = {start: (None, 1, 0)}
    frontier = [start]
    while frontier:
        top = frontier.pop()
        found = visit(top, maps)
        if found is not None:
            return maps, found
        try:
            step = coord_map(top.fn)
        except UndefinedMapException:
            continue
        for bottom in _bottoms(top):
            maps[bottom] = compose(maps[top], step)
            frontier.append(bottom)
    return maps, None


def coord_map_from_to(top_from, top_to):
    """The (axis, a, b) map from ``top_from`` coordinates to ``top_to``'s.

    Raises ``RuntimeError`` when the tops are not connected by spatial layers.
    """
    from_maps, _ = _walk_back(top_from, lambda top, maps: None)

    def meet(top, maps):
        if top in from_maps:
            return compose(maps[top], inverse(from_maps[top]))
        return None

    _, found = _walk_back(top_to, meet)
    if found is None:
        raise RuntimeError("Could not compute map between tops; are they connected "
                           "by spatial layers?")
    return found


def crop(top_from, top_to):
    """A ``Crop`` of ``top_from`` to the extent of ``top_to``.

    Raises ``AssertionError`` (as pycaffe) when scales differ or the offset is
    negative or fractional.
    """
    ax, a, b = coord_map_from_to(top_from, top_to)
    if not np.all(np.asarray(a) == 1):
        raise AssertionError(f"scale mismatch on crop (a = {a})")
    if not np.all(np.asarray(b) <= 0):
        raise AssertionError(f"cannot crop negative offset (b = {b})")
    if not np.all(np.round(b) == b):
        raise AssertionError(f"cannot crop noninteger offset (b = {b})")
    offset = [int(v) for v in np.atleast_1d(-np.round(b)).astype(int)]
    return L.Crop(top_from, top_to, crop_param=dict(axis=ax + 1, offset=offset))
