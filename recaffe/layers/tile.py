"""Tile: repeat a blob ``tiles`` times along an axis.

Math: with the bottom viewed as (outer, inner) where inner = product of axes
>= ``axis``, top is (outer, tiles, inner): the whole trailing block repeated.
Backward sums the ``tiles`` copies of the top diff.

Bottoms: ``x`` (any shape with an ``axis``).
Tops: ``x`` with ``shape[axis] * tiles`` along ``axis``.
Learnable params: none.
Proto fields: tile_param { axis tiles }.
Gradients: to the bottom.
"""

from __future__ import annotations

from recaffe.layer import Layer, register_layer


@register_layer
class TileLayer(Layer):
    type = "Tile"
    exact_num_bottom = 1
    exact_num_top = 1

    def setup(self, bottom, top):
        if top[0] is bottom[0]:
            raise self.error("does not work in place (top and bottom are one blob)")
        p = self.layer_param.tile_param
        if not p.HasField("tiles") or p.tiles <= 0:
            raise self.error(
                f"tile_param.tiles must be a positive number of tiles, got "
                f"{p.tiles if p.HasField('tiles') else 'none'}"
            )
        self.tiles = int(p.tiles)

    def reshape(self, bottom, top):
        x = bottom[0]
        axis = self.canonical_axis(self.layer_param.tile_param.axis, x.num_axes,
                                   "tile_param.axis")
        self.outer = x.count_range(0, axis)
        self.inner = x.count_range(axis)
        shape = list(x.shape)
        shape[axis] *= self.tiles
        top[0].reshape(tuple(shape))

    def forward(self, bottom, top):
        y = top[0].data.reshape(self.outer, self.tiles, self.inner)
        y[...] = bottom[0].data.reshape(self.outer, 1, self.inner)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy = top[0].diff.reshape(self.outer, self.tiles, self.inner)
        self.xp.sum(dy, axis=1, out=bottom[0].diff.reshape(self.outer, self.inner))
