"""Embed: look up rows of a weight matrix by integer id (word embeddings).

Math: for each id ``k`` of the bottom, the top row is ``W[k] + b``.
Backward: ``dW[k] += dy`` summed over every occurrence of ``k`` (scatter-add);
``db += sum of dy``.

Bottoms: ``ids`` of any shape, float-valued integer ids in [0, input_dim).
Tops: ``ids.shape + (num_output,)``.
Learnable params: ``W`` (input_dim, num_output); ``b`` (num_output,) if
bias_term.
Proto fields: embed_param { num_output input_dim bias_term weight_filler
bias_filler }.
Gradients: to W and b; none to the ids (asking for one is an error).
"""

from __future__ import annotations

import numpy as np

from recaffe import backend
from recaffe.backend import cuda_graph
from recaffe.errors import DataError, LayerSetupError
from recaffe.layer import Layer, register_layer


@register_layer
class EmbedLayer(Layer):
    type = "Embed"
    exact_num_bottom = 1
    exact_num_top = 1

    def setup(self, bottom, top):
        p = self.layer_param.embed_param
        self.N = int(p.num_output)
        if self.N <= 0:
            raise self.error(f"embed_param.num_output must be > 0, got {p.num_output}")
        self.K = int(p.input_dim)
        if self.K <= 0:
            raise self.error(f"embed_param.input_dim must be > 0, got {p.input_dim}")
        self.bias_term = p.bias_term
        if not self.blobs:
            self.make_param_blob(
                (self.K, self.N),
                p.weight_filler if p.HasField("weight_filler") else None,
            )
            if self.bias_term:
                self.make_param_blob(
                    (self.N,), p.bias_filler if p.HasField("bias_filler") else None
                )

    def allow_force_backward(self, bottom_index: int) -> bool:
        # The ids are indices: force_backward must not ask for their gradient.
        return bottom_index != 0

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape + (self.N,))

    def _ids(self, bottom):
        xp = self.xp
        v = bottom[0].data.reshape(-1)
        # Checked on the floats before the cast: NaN, inf and huge values
        # have no int64 value (the cast would warn and give garbage ids).
        bad = ~((v >= 0) & (v < self.K) & (v == xp.floor(v)))
        # In a CUDA-graph capture the flag is read after each replay instead.
        if cuda_graph.any_flag(bad, lambda: self._ids(bottom)):
            k = int(xp.argmax(bad))
            pos = tuple(int(i) for i in np.unravel_index(k, bottom[0].shape))
            raise self.error(
                f"bottom[0] value {float(v[k])!r} at position {pos} is not an "
                f"integer id in [0, {self.K}) (input_dim {self.K})",
                DataError,
            )
        return v.astype(xp.int64)

    def forward(self, bottom, top):
        xp = self.xp
        ids = self._ids(bottom)
        y = top[0].data.reshape(-1, self.N)
        w = self.blobs[0].data
        if w.dtype == y.dtype:
            xp.take(w, ids, axis=0, out=y)
        else:
            y[...] = w[ids]
        if self.bias_term:
            y += self.blobs[1].data

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            raise self.error(
                "can't backpropagate to the ids (bottom[0]); set propagate_down: "
                "false for it",
                LayerSetupError,
            )
        dy = top[0].diff.reshape(-1, self.N)
        if self.param_propagate_down[0]:
            backend.scatter_add(self.blobs[0].diff, self._ids(bottom), dy)
        if self.bias_term and self.param_propagate_down[1]:
            self.blobs[1].diff += dy.sum(axis=0)
