"""Im2col: rearrange every kernel window of the input into a column.

Math: ``y[n, (c * K + q), p] = xpad[n, c, p * stride + q * dilation]`` where ``q``
runs over the ``K = prod(kernel)`` kernel taps in row-major order and ``xpad`` is
the input zero-padded by ``pad``; the output spatial extents are Convolution's.
The gradient (col2im) sums each column entry back onto its input pixel.

Bottoms: ``(*batch, C, *spatial)`` (channel axis ``axis``, default 1).
Tops: ``(*batch, C * K, *out_spatial)``.
Learnable params: none.
Proto fields: convolution_param { kernel_size kernel_h kernel_w pad pad_h pad_w
stride stride_h stride_w dilation axis } (num_output, group and the fillers are
ignored).
Gradients: to the bottom.
"""

from __future__ import annotations

import math

from recaffe.errors import ShapeError
from recaffe.layer import Layer, register_layer
from recaffe.layers.conv_util import Im2col, conv_out_size, parse_conv_geometry


@register_layer
class Im2colLayer(Layer):
    type = "Im2col"
    exact_num_bottom = 1
    exact_num_top = 1

    def setup(self, bottom, top):
        p = self.layer_param.convolution_param
        nax = bottom[0].num_axes
        self.channel_axis = self.canonical_axis(p.axis, nax)
        self.num_spatial = nax - self.channel_axis - 1
        self.kernel, self.pad, self.stride, self.dilation = parse_conv_geometry(
            self, p, self.num_spatial
        )
        self._key = None

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        ca = self.channel_axis
        if len(shape) != ca + 1 + self.num_spatial:
            raise self.error(
                f"bottom[0] must keep {ca + 1 + self.num_spatial} axes as at setup, "
                f"got shape {shape}",
                ShapeError,
            )
        spatial = shape[ca + 1:]
        out = tuple(
            conv_out_size(i, k, p, s, d)
            for i, k, p, s, d in zip(spatial, self.kernel, self.pad, self.stride,
                                     self.dilation, strict=True)
        )
        if any(o <= 0 for o in out):
            raise self.error(
                f"kernel {self.kernel} (dilation {self.dilation}) is larger than the "
                f"padded input (bottom spatial shape {spatial}, pad {self.pad})",
                ShapeError,
            )
        c = shape[ca]
        top[0].reshape(shape[:ca] + (c * math.prod(self.kernel),) + out)
        key = (shape, bottom[0].data.dtype)
        if key != self._key:
            self._key = key
            self.img_shape = (math.prod(shape[:ca]), c) + spatial
            self.plan = Im2col(self.xp, self.img_shape, bottom[0].data.dtype,
                               self.kernel, self.stride, self.dilation, self.pad,
                               out_shape=out)

    def forward(self, bottom, top):
        x = bottom[0].data.reshape(self.img_shape)
        b, c = self.img_shape[:2]
        self.plan.im2col(x, out=top[0].data.reshape(b, c * self.plan.K, self.plan.O))

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        b, c = self.img_shape[:2]
        col = top[0].diff.reshape(b, c * self.plan.K, self.plan.O)
        self.plan.col2im(col, bottom[0].diff.reshape(self.img_shape))
