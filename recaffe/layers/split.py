"""Split: hand one blob to several consumers (inserted automatically on fan-out).

Math: every top is the bottom (the tops share the bottom's data); backward
sums the tops' diffs into the bottom diff.

Bottoms: ``x`` (any shape).
Tops: k >= 1 blobs sharing ``x``'s data (not in place).
Learnable params: none.
Proto fields: none.
Gradients: to the bottom.
"""

from __future__ import annotations

from recaffe.layer import Layer, register_layer


@register_layer
class SplitLayer(Layer):
    type = "Split"
    exact_num_bottom = 1
    min_top = 1

    def reshape(self, bottom, top):
        for j, t in enumerate(top):
            if t is bottom[0]:
                raise self.error(
                    f"top[{j}] is the bottom blob; Split does not work in place"
                )
            t.reshape(bottom[0].shape)
            t.share_data(bottom[0])

    def forward(self, bottom, top):
        # The tops share the bottom's data (set in reshape); nothing to copy.
        for t in top:
            if not t.shares_data_with(bottom[0]):
                t.share_data(bottom[0])

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        xp = self.xp
        d = bottom[0].diff
        if len(top) == 1:
            d[...] = top[0].diff
            return
        xp.add(top[0].diff, top[1].diff, out=d)
        for t in top[2:]:
            d += t.diff
