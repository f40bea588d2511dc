"""Convolution: grouped, strided, padded, dilated N-D convolution (cross-correlation).

Math: with ``g`` groups, output channel ``o`` of group ``j`` sees input channels
``j * C/g .. (j+1) * C/g - 1``:

    y[n, o, p] = b[o]
        + sum_{c, q} W[o, c, q] * xpad[n, j*C/g + c, p*stride + q*dilation]

where ``xpad`` is the bottom zero-padded by ``pad`` on both sides of every spatial
axis. Output extent per spatial axis:
``floor((in + 2 pad - (dilation (kernel - 1) + 1)) / stride) + 1``.
Computed as im2col + one GEMM per group over the whole batch.

Bottoms: one or more blobs of one shape ``(*batch, C, *spatial)``; the channel axis
is ``axis`` (default 1), the axes before it are batch axes, the axes after it
spatial (at least one).
Tops: one per bottom, ``(*batch, num_output, *out_spatial)``.
Learnable params: ``W`` ``(num_output, C / group, *kernel)``; ``b`` ``(num_output,)``
if bias_term.
Proto fields: convolution_param { num_output bias_term pad kernel_size stride
dilation pad_h pad_w kernel_h kernel_w stride_h stride_w group weight_filler
bias_filler axis } (engine and force_nd_im2col are accepted and ignored).
Gradients: to every bottom and both params.
"""

from __future__ import annotations

import math

from recaffe.backend import blas
from recaffe.errors import ShapeError
from recaffe.layer import Layer, register_layer
from recaffe.layers.conv_util import (
    Im2col,
    conv_out_size,
    parse_conv_geometry,
)

# Largest column buffer (elements) built at once; bigger batches are processed
# in chunks of images so memory stays bounded.
COL_BUFFER_LIMIT = 1 << 25


class BaseConvolutionLayer(Layer):
    """Shared setup of Convolution and Deconvolution (Caffe's BaseConvolutionLayer).

    ``transposed`` is True for Deconvolution: the roles of bottom and top are
    swapped with respect to the im2col geometry.
    """

    min_bottom = 1
    min_top = 1
    equal_num_bottom_top = True
    transposed = False

    def setup(self, bottom, top):
        p = self.layer_param.convolution_param
        nax = bottom[0].num_axes
        self.channel_axis = self.canonical_axis(p.axis, nax)
        self.num_spatial = nax - self.channel_axis - 1
        self.kernel, self.pad, self.stride, self.dilation = parse_conv_geometry(
            self, p, self.num_spatial
        )
        self.num_output = int(p.num_output)
        if self.num_output <= 0:
            raise self.error(f"num_output must be > 0, got {p.num_output}")
        self.group = int(p.group)
        if self.group <= 0:
            raise self.error(f"group must be > 0, got {p.group}")
        self.channels = bottom[0].shape[self.channel_axis]
        if self.channels % self.group:
            raise self.error(
                f"the number of input channels ({self.channels}) must be a multiple "
                f"of group ({self.group})"
            )
        if self.num_output % self.group:
            raise self.error(
                f"num_output ({self.num_output}) must be a multiple of group "
                f"({self.group})"
            )
        self.bias_term = bool(p.bias_term)
        if self.transposed:
            wshape = (self.channels, self.num_output // self.group) + self.kernel
        else:
            wshape = (self.num_output, self.channels // self.group) + self.kernel
        if not self.blobs:
            self.make_param_blob(
                wshape, p.weight_filler if p.HasField("weight_filler") else None
            )
            if self.bias_term:
                self.make_param_blob(
                    (self.num_output,),
                    p.bias_filler if p.HasField("bias_filler") else None,
                )
        self._plans: dict = {}
        self._plan_key = None
        self._bufs: dict = {}

    # -- shapes ---------------------------------------------------------------
    def output_spatial(self, in_spatial):
        raise NotImplementedError

    def reshape(self, bottom, top):
        nax = self.channel_axis + 1 + self.num_spatial
        shape0 = bottom[0].shape
        if len(shape0) != nax:
            raise self.error(
                f"bottom[0] must keep {nax} axes as at setup, got shape {shape0}",
                ShapeError,
            )
        for i, b in enumerate(bottom):
            if b.shape != shape0:
                raise self.error(
                    f"bottom[{i}] must have the shape of bottom[0] {shape0}, got "
                    f"{b.shape}",
                    ShapeError,
                )
        ca = self.channel_axis
        if shape0[ca] != self.channels:
            raise self.error(
                f"bottom[0] must have {self.channels} channels on axis {ca} (as at "
                f"setup), got shape {shape0}",
                ShapeError,
            )
        self.batch = math.prod(shape0[:ca])
        self.in_spatial = tuple(shape0[ca + 1:])
        self.out_spatial = self.output_spatial(self.in_spatial)
        for t in top:
            t.reshape(shape0[:ca] + (self.num_output,) + self.out_spatial)
        dtype = bottom[0].data.dtype
        key = (self.batch, self.in_spatial, dtype)
        if key != self._plan_key:
            self._plan_key = key
            self._plans = {}
            self._bufs = {}
            # The im2col image is the bottom (convolution) or the top
            # (deconvolution); its "output" extent is the other one.
            if self.transposed:
                img_c, img_sp = self.num_output, self.out_spatial
                col_sp = self.in_spatial
            else:
                img_c, img_sp = self.channels, self.in_spatial
                col_sp = self.out_spatial
            self._img = (img_c, img_sp, col_sp, dtype)
            per_image = img_c * math.prod(self.kernel) * math.prod(col_sp)
            self.chunk = max(1, min(self.batch, COL_BUFFER_LIMIT // max(per_image, 1)))

    def _plan(self, nb: int) -> Im2col:
        plan = self._plans.get(nb)
        if plan is None:
            img_c, img_sp, col_sp, dtype = self._img
            plan = self._plans[nb] = Im2col(
                self.xp, (nb, img_c) + img_sp, dtype, self.kernel, self.stride,
                self.dilation, self.pad, out_shape=col_sp,
            )
        return plan

    def _buf(self, name, shape, dtype):
        key = (name, shape)
        b = self._bufs.get(key)
        if b is None:
            b = self._bufs[key] = self.xp.empty(shape, dtype=dtype)
        return b

    def _chunks(self):
        for b0 in range(0, self.batch, self.chunk):
            yield b0, min(self.chunk, self.batch - b0)

    def _bias_diff(self, top):
        if self.bias_term and self.param_propagate_down[1]:
            db = self.blobs[1].diff
            for t in top:
                dy = t.diff.reshape(self.batch, self.num_output, -1)
                db += dy.sum(axis=(0, 2))


@register_layer
class ConvolutionLayer(BaseConvolutionLayer):
    type = "Convolution"

    def output_spatial(self, in_spatial):
        out = tuple(
            conv_out_size(i, k, p, s, d)
            for i, k, p, s, d in zip(in_spatial, self.kernel, self.pad, self.stride,
                                     self.dilation, strict=True)
        )
        if any(o <= 0 for o in out):
            padded = tuple(i + 2 * p for i, p in zip(in_spatial, self.pad, strict=True))
            raise self.error(
                f"kernel {self.kernel} (dilation {self.dilation}) is larger than the "
                f"padded input {padded} (bottom spatial shape {in_spatial}, pad "
                f"{self.pad})",
                ShapeError,
            )
        return out

    def forward(self, bottom, top):
        g, co, ci = self.group, self.num_output, self.channels
        kdim = ci // g * math.prod(self.kernel)
        o = math.prod(self.out_spatial)
        w = self.blobs[0].data.reshape(g, co // g, kdim)
        for bb, tt in zip(bottom, top, strict=True):
            x = bb.data.reshape((self.batch, ci) + self.in_spatial)
            y = tt.data.reshape(self.batch, co, o)
            for b0, nb in self._chunks():
                plan = self._plan(nb)
                col = plan.im2col(x[b0:b0 + nb], channel_major=True)
                out = self._buf("y", (g, co // g, nb * o), x.dtype)
                blas.matmul(w, col.reshape(g, kdim, nb * o), out=out)
                y[b0:b0 + nb] = out.reshape(co, nb, o).transpose(1, 0, 2)
            if self.bias_term:
                y += self.blobs[1].data.reshape(1, co, 1)

    def backward(self, top, propagate_down, bottom):
        g, co, ci = self.group, self.num_output, self.channels
        kdim = ci // g * math.prod(self.kernel)
        o = math.prod(self.out_spatial)
        self._bias_diff(top)
        want_w = self.param_propagate_down[0]
        w = self.blobs[0].data.reshape(g, co // g, kdim)
        for i, (bb, tt) in enumerate(zip(bottom, top, strict=True)):
            if not (want_w or propagate_down[i]):
                continue
            x = bb.data.reshape((self.batch, ci) + self.in_spatial)
            dy = tt.diff.reshape(self.batch, co, o)
            dx = bb.diff.reshape((self.batch, ci) + self.in_spatial) \
                if propagate_down[i] else None
            for b0, nb in self._chunks():
                plan = self._plan(nb)
                dyt = self._buf("dyt", (co, nb, o), x.dtype)
                dyt[...] = dy[b0:b0 + nb].transpose(1, 0, 2)
                dyg = dyt.reshape(g, co // g, nb * o)
                if want_w:
                    col = plan.im2col(x[b0:b0 + nb], channel_major=True)
                    dw = self.blobs[0].diff.reshape(g, co // g, kdim)
                    colg = col.reshape(g, kdim, nb * o)
                    blas.matmul_acc(dyg, colg.transpose(0, 2, 1), dw)
                if dx is not None:
                    dcol = self._buf("dcol", (g, kdim, nb * o), x.dtype)
                    blas.matmul(w.transpose(0, 2, 1), dyg, out=dcol)
                    plan.col2im(dcol.reshape(g * kdim, nb * o), dx[b0:b0 + nb],
                                channel_major=True)

