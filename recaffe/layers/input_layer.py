"""Input: declares top blobs of given shapes; the caller fills them.

Math: none (forward does nothing; the data is whatever was written into the tops).

Bottoms: none.
Tops: one or more blobs, each of ``input_param.shape`` (one shape for all tops,
or one per top). With no shape the tops stay empty until reshaped by the caller.
Learnable params: none.
Proto fields: input_param { shape }.
Gradients: none (no bottoms).
"""

from __future__ import annotations

from recaffe.layer import Layer, register_layer


@register_layer
class InputLayer(Layer):
    type = "Input"
    exact_num_bottom = 0
    min_top = 1

    def setup(self, bottom, top):
        shapes = self.layer_param.input_param.shape
        n = len(shapes)
        if n not in (0, 1, len(top)):
            raise self.error(
                f"input_param must give 'shape' once, once per top ({len(top)}) or "
                f"not at all, got {n} shapes"
            )
        for i, t in enumerate(top):
            if n:
                dims = tuple(int(d) for d in shapes[0 if n == 1 else i].dim)
                if any(d < 0 for d in dims):
                    raise self.error(f"shape {dims} for top[{i}] has a negative dim")
                t.reshape(dims)

    def reshape(self, bottom, top):
        # The tops keep whatever shape they were given (setup or the caller).
        pass

    def forward(self, bottom, top):
        pass
