"""Parameter: expose a learnable blob as a top.

Math: ``top = W``. Backward accumulates the top diff into W's diff.

Bottoms: none.
Tops: ``W``'s values, shape ``parameter_param.shape``.
Learnable params: ``W`` (shape ``parameter_param.shape``, initialised to 0;
load or share it to give it values).
Proto fields: parameter_param { shape }.
Gradients: to W.
"""

from __future__ import annotations

from recaffe.layer import Layer, register_layer


@register_layer
class ParameterLayer(Layer):
    type = "Parameter"
    exact_num_bottom = 0
    exact_num_top = 1

    def setup(self, bottom, top):
        shape = tuple(int(d) for d in self.layer_param.parameter_param.shape.dim)
        if any(d < 0 for d in shape):
            raise self.error(f"parameter_param.shape {shape} has a negative dim")
        if not self.blobs:
            self.make_param_blob(shape, None)

    def reshape(self, bottom, top):
        w = self.blobs[0]
        top[0].reshape(w.shape)
        # Re-share every time: the net may re-alias W's data after setup.
        top[0].share_data(w)

    def forward(self, bottom, top):
        if not top[0].shares_data_with(self.blobs[0]):
            top[0].share_data(self.blobs[0])

    def backward(self, top, propagate_down, bottom):
        if self.param_propagate_down[0]:
            self.blobs[0].diff += top[0].diff
