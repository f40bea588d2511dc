"""Deconvolution: transposed convolution (the adjoint of Convolution's data path).

Math: every input pixel scatters ``W[c_in]`` (times its value) into the output,
which is then cropped by ``pad``; with groups, input channels of group ``j`` write
only output channels of group ``j``. Equivalently ``y = col2im(W^T x) + b``, and
the gradient with respect to ``x`` is a convolution of ``dy`` with ``W``. Output
extent per spatial axis: ``stride (in - 1) + dilation (kernel - 1) + 1 - 2 pad``.

Bottoms: one or more blobs of one shape ``(*batch, C, *spatial)`` (channel axis
``axis``, default 1).
Tops: one per bottom, ``(*batch, num_output, *out_spatial)``.
Learnable params: ``W`` ``(C, num_output / group, *kernel)``; ``b``
``(num_output,)`` if bias_term.
Proto fields: convolution_param (the same fields as Convolution).
Gradients: to every bottom and both params.
"""

from __future__ import annotations

import math

from recaffe.backend import blas
from recaffe.errors import ShapeError
from recaffe.layer import register_layer
from recaffe.layers.conv import BaseConvolutionLayer
from recaffe.layers.conv_util import deconv_out_size


@register_layer
class DeconvolutionLayer(BaseConvolutionLayer):
    type = "Deconvolution"
    transposed = True

    def output_spatial(self, in_spatial):
        out = tuple(
            deconv_out_size(i, k, p, s, d)
            for i, k, p, s, d in zip(in_spatial, self.kernel, self.pad, self.stride,
                                     self.dilation, strict=True)
        )
        if any(o <= 0 for o in out):
            raise self.error(
                f"output spatial shape {out} is empty: pad {self.pad} crops more than "
                f"the transposed convolution produces (bottom spatial shape "
                f"{in_spatial}, kernel {self.kernel}, stride {self.stride})",
                ShapeError,
            )
        return out

    def _x_transposed(self, x, b0, nb, name):
        """The chunk of ``x`` ``(nb, C, I)`` as ``(C, nb * I)``."""
        ci = self.channels
        i = math.prod(self.in_spatial)
        xt = self._buf(name, (ci, nb, i), x.dtype)
        xt[...] = x[b0:b0 + nb].transpose(1, 0, 2)
        return xt.reshape(ci, nb * i)

    def forward(self, bottom, top):
        g, co, ci = self.group, self.num_output, self.channels
        kdim = co // g * math.prod(self.kernel)
        i = math.prod(self.in_spatial)
        w = self.blobs[0].data.reshape(g, ci // g, kdim)
        for bb, tt in zip(bottom, top, strict=True):
            x = bb.data.reshape(self.batch, ci, i)
            y = tt.data.reshape((self.batch, co) + self.out_spatial)
            for b0, nb in self._chunks():
                plan = self._plan(nb)
                xt = self._x_transposed(x, b0, nb, "xt")
                col = self._buf("col", (g, kdim, nb * i), x.dtype)
                blas.matmul(w.transpose(0, 2, 1), xt.reshape(g, ci // g, nb * i),
                            out=col)
                plan.col2im(col.reshape(g * kdim, nb * i), y[b0:b0 + nb],
                            channel_major=True)
            if self.bias_term:
                y.reshape(self.batch, co, -1)[...] += self.blobs[1].data.reshape(
                    1, co, 1)

    def backward(self, top, propagate_down, bottom):
        g, co, ci = self.group, self.num_output, self.channels
        kdim = co // g * math.prod(self.kernel)
        i = math.prod(self.in_spatial)
        self._bias_diff(top)
        want_w = self.param_propagate_down[0]
        w = self.blobs[0].data.reshape(g, ci // g, kdim)
        for k, (bb, tt) in enumerate(zip(bottom, top, strict=True)):
            if not (want_w or propagate_down[k]):
                continue
            x = bb.data.reshape(self.batch, ci, i)
            dy = tt.diff.reshape((self.batch, co) + self.out_spatial)
            dx = bb.diff.reshape(self.batch, ci, i) if propagate_down[k] else None
            for b0, nb in self._chunks():
                plan = self._plan(nb)
                col = plan.im2col(dy[b0:b0 + nb], channel_major=True).reshape(
                    g, kdim, nb * i)
                if want_w:
                    xt = self._x_transposed(x, b0, nb, "xt")
                    dw = self.blobs[0].diff.reshape(g, ci // g, kdim)
                    xg = xt.reshape(g, ci // g, nb * i)
                    blas.matmul_acc(xg, col.transpose(0, 2, 1), dw)
                if dx is not None:
                    dxt = self._buf("dxt", (g, ci // g, nb * i), x.dtype)
                    blas.matmul(w, col, out=dxt)
                    dx[b0:b0 + nb] = dxt.reshape(ci, nb, i).transpose(1, 0, 2)
