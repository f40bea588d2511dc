"""Silence: consume blobs that nothing else reads, so they are not net outputs.

Math: no output. Backward writes zero diffs into the bottoms that ask for one.

Bottoms: k >= 1 blobs of any shape.
Tops: none.
Learnable params: none.
Proto fields: none.
Gradients: zeros to every bottom.
"""

from __future__ import annotations

from recaffe.layer import Layer, register_layer


@register_layer
class SilenceLayer(Layer):
    type = "Silence"
    min_bottom = 1
    exact_num_top = 0

    def forward(self, bottom, top):
        pass

    def backward(self, top, propagate_down, bottom):
        for i, b in enumerate(bottom):
            if propagate_down[i]:
                b.diff[...] = 0
