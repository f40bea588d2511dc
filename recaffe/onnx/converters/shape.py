"""Concat, Slice, Flatten, Reshape, Crop, Tile and constant DummyData."""

from __future__ import annotations

import itertools

import numpy as np

from recaffe.onnx.registry import converter


@converter("Concat")
def concat(g, v):
    g.node("Concat", list(v.bottoms), v.tops[0], axis=int(v.layer.axis))


@converter("Slice")
def slice_(g, v):
    bounds = v.layer.bounds
    sizes = [b - a for a, b in itertools.pairwise(bounds)]
    if len(v.tops) == 1:
        g.identity(v.bottoms[0], v.tops[0])
        return
    g.split(v.bottoms[0], sizes, v.layer.axis, outputs=v.tops)


@converter("Flatten", "Reshape")
def reshape(g, v):
    # Both only change the shape; the layer computed Caffe's target shape
    # (Reshape's 0 and -1, axis and num_axes; Flatten's axis..end_axis).
    g.reshape(v.bottoms[0], v.bottom_shapes[0], v.top_shapes[0], output=v.tops[0])


@converter("Crop")
def crop(g, v):
    axes, starts, ends = [], [], []
    for i, w in enumerate(v.layer.window):
        if w.start is None and w.stop is None:
            continue
        axes.append(i)
        starts.append(w.start)
        ends.append(w.stop)
    if not axes:
        g.identity(v.bottoms[0], v.tops[0])
        return
    g.node("Slice", [v.bottoms[0], g.ints(starts), g.ints(ends), g.ints(axes, "axes")],
           v.tops[0])


@converter("Tile")
def tile(g, v):
    # Caffe repeats the whole block from ``axis`` on, which is ONNX's Tile
    # along that axis.
    x = v.bottom_shapes[0]
    axis = v.layer.canonical_axis(v.param.tile_param.axis, len(x))
    reps = [1] * len(x)
    reps[axis] = v.layer.tiles
    g.node("Tile", [v.bottoms[0], g.ints(reps, "repeats")], v.tops[0])


@converter("DummyData")
def dummy_data(g, v):
    # Constant tops (e.g. zero initial states) become constants; random ones
    # would change at every forward and have no deterministic equivalent.
    layer = v.layer
    fillers = layer.fillers
    for j, (top, shape) in enumerate(zip(v.tops, v.top_shapes, strict=True)):
        f = fillers[j] if len(fillers) > 1 else fillers[0]
        if f.type != "constant":
            raise v.error(f"top '{top}' uses the random filler '{f.type}'; only "
                          "constant DummyData tops can be exported")
        g.identity(g.const(np.full(shape, f.value, dtype=np.float32), top), top)
