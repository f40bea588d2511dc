"""Shared helpers of the convolution family: geometry parsing, im2col and col2im.

Not a layer. ``Convolution``, ``Deconvolution``, ``Im2col`` and ``Pooling`` use:

- :func:`parse_conv_geometry`: Caffe's reading of a ``ConvolutionParameter``'s
  kernel / pad / stride / dilation (one value for all spatial axes, one per axis,
  or ``_h``/``_w`` for 2-D), with typed errors.
- :func:`conv_out_size` / :func:`deconv_out_size`: output extents.
- :class:`Im2col`: im2col / col2im for one input shape ``(B, C, *spatial)``.

im2col reads every kernel window of the (padded) input at once through a
strided view (no Python loop over pixels); col2im, its adjoint, loops over the
kernel offsets only, each step one vectorised add of a strided slice. The padded
buffer and the column buffer are allocated once per plan; a layer keeps one plan
per bottom shape and builds a new one when the shape changes.

Column layouts (``K = prod(kernel)``, ``O = prod(out_shape)``):

- ``channel_major=False``: ``(B, C * K, O)`` — Caffe's per-image column matrix,
  stacked over the batch (the ``Im2col`` layer's top).
- ``channel_major=True``: ``(C * K, B * O)`` — the batch folded into the GEMM's
  column dimension, so a convolution over the whole batch is one matrix product
  per group.
"""

from __future__ import annotations

import itertools
import math

from recaffe.errors import LayerSetupError, ShapeError


def conv_out_size(size: int, kernel: int, pad: int, stride: int, dilation: int) -> int:
    """``floor((size + 2 pad - (dilation (kernel - 1) + 1)) / stride) + 1``.

    Returns 0 or less when the dilated kernel is larger than the padded input.
    """
    extent = dilation * (kernel - 1) + 1
    span = size + 2 * pad - extent
    if span < 0:
        return 0
    return span // stride + 1


def deconv_out_size(size: int, kernel: int, pad: int, stride: int,
                    dilation: int) -> int:
    """``stride (size - 1) + dilation (kernel - 1) + 1 - 2 pad``."""
    return stride * (size - 1) + dilation * (kernel - 1) + 1 - 2 * pad


def _per_axis(layer, values, num_spatial: int, what: str, default: int):
    values = [int(v) for v in values]
    if not values:
        return (default,) * num_spatial
    if len(values) == 1:
        return (values[0],) * num_spatial
    if len(values) != num_spatial:
        raise layer.error(
            f"{what} must be given once or once per spatial axis ({num_spatial}), "
            f"got {len(values)} values {values}",
            LayerSetupError,
        )
    return tuple(values)


def parse_conv_geometry(layer, p, num_spatial: int):
    """Kernel, pad, stride and dilation tuples (one entry per spatial axis).

    Args:
        layer: the layer (for error messages).
        p: a ``ConvolutionParameter``.
        num_spatial: number of spatial axes of the bottom.
    Raises:
        LayerSetupError for a missing or zero kernel size, a zero stride or
        dilation, ``_h``/``_w`` fields on a non-2-D bottom, both ways of giving
        a value at once, or a wrong number of repeated values.
    """
    if num_spatial < 1:
        raise layer.error(
            "the bottom needs at least one spatial axis after the channel axis",
            ShapeError,
        )
    hw_kernel = p.HasField("kernel_h") or p.HasField("kernel_w")
    if hw_kernel:
        if num_spatial != 2:
            raise layer.error(
                f"kernel_h / kernel_w can only be used for 2-D convolution, the "
                f"bottom has {num_spatial} spatial axes"
            )
        if len(p.kernel_size):
            raise layer.error(
                "give either kernel_size or kernel_h / kernel_w, not both"
            )
        if not (p.HasField("kernel_h") and p.HasField("kernel_w")):
            raise layer.error("kernel_h and kernel_w must be given together")
        kernel = (int(p.kernel_h), int(p.kernel_w))
    else:
        if not len(p.kernel_size):
            raise layer.error(
                "kernel size is required: set kernel_size (or kernel_h and kernel_w)"
            )
        kernel = _per_axis(layer, p.kernel_size, num_spatial, "kernel_size", 1)
    if any(k <= 0 for k in kernel):
        raise layer.error(f"kernel dimensions must be > 0, got {kernel}")

    hw_stride = p.HasField("stride_h") or p.HasField("stride_w")
    if hw_stride:
        if num_spatial != 2:
            raise layer.error(
                f"stride_h / stride_w can only be used for 2-D convolution, the "
                f"bottom has {num_spatial} spatial axes"
            )
        if len(p.stride):
            raise layer.error("give either stride or stride_h / stride_w, not both")
        if not (p.HasField("stride_h") and p.HasField("stride_w")):
            raise layer.error("stride_h and stride_w must be given together")
        stride = (int(p.stride_h), int(p.stride_w))
    else:
        stride = _per_axis(layer, p.stride, num_spatial, "stride", 1)
    if any(s <= 0 for s in stride):
        raise layer.error(f"stride must be > 0, got {stride}")

    hw_pad = p.HasField("pad_h") or p.HasField("pad_w")
    if hw_pad:
        if num_spatial != 2:
            raise layer.error(
                f"pad_h / pad_w can only be used for 2-D convolution, the bottom "
                f"has {num_spatial} spatial axes"
            )
        if len(p.pad):
            raise layer.error("give either pad or pad_h / pad_w, not both")
        pad = (int(p.pad_h), int(p.pad_w))
    else:
        pad = _per_axis(layer, p.pad, num_spatial, "pad", 0)

    dilation = _per_axis(layer, p.dilation, num_spatial, "dilation", 1)
    if any(d <= 0 for d in dilation):
        raise layer.error(f"dilation must be > 0, got {dilation}")
    return kernel, pad, stride, dilation


def _as_strided(xp, a, shape, strides):
    return xp.lib.stride_tricks.as_strided(a, shape=shape, strides=strides)


class Im2col:
    """im2col / col2im for inputs of one shape ``(B, C, *spatial)``.

    Args:
        xp: the array module.
        shape: the input shape ``(B, C, *spatial)``.
        dtype: the array dtype.
        kernel, stride, dilation: one int per spatial axis.
        pad_before: zero-padding (or ``fill``) before each spatial axis.
        out_shape: output extents; default Caffe's convolution formula with
            ``pad_before`` on both sides.
        fill: value of the padding (``-inf`` for max pooling).
    """

    def __init__(self, xp, shape, dtype, kernel, stride, dilation, pad_before,
                 out_shape=None, fill: float = 0.0):
        self.xp = xp
        self.shape = tuple(int(s) for s in shape)
        self.dtype = dtype
        self.kernel = tuple(kernel)
        self.stride = tuple(stride)
        self.dilation = tuple(dilation)
        self.pad = tuple(pad_before)
        spatial = self.shape[2:]
        if out_shape is None:
            out_shape = tuple(
                conv_out_size(i, k, p, s, d)
                for i, k, p, s, d in zip(spatial, self.kernel, self.pad, self.stride,
                                         self.dilation, strict=True)
            )
        self.out_shape = tuple(int(o) for o in out_shape)
        self.K = math.prod(self.kernel)
        self.O = math.prod(self.out_shape)
        # The padded extent must hold the input and every window's last tap.
        padded = tuple(
            max(i + p, s * (o - 1) + d * (k - 1) + 1)
            for i, p, s, o, d, k in zip(spatial, self.pad, self.stride, self.out_shape,
                                        self.dilation, self.kernel, strict=True)
        )
        self.padded_shape = self.shape[:2] + padded
        self.needs_pad = padded != spatial
        self.interior = (slice(None), slice(None)) + tuple(
            slice(p, p + i) for p, i in zip(self.pad, spatial, strict=True)
        )
        self.fill = fill
        self._xpad = None
        self._dpad = None
        self._col = {}
        self.offsets = list(itertools.product(*(range(k) for k in self.kernel)))
        self._tap_slices = [
            (slice(None), slice(None)) + tuple(
                slice(o * d, o * d + s * (n - 1) + 1, s)
                for o, d, s, n in zip(off, self.dilation, self.stride, self.out_shape,
                                      strict=True)
            )
            for off in self.offsets
        ]

    # -- im2col ---------------------------------------------------------------
    def padded(self, x):
        """``x`` copied into the padded buffer (or ``x`` itself without padding)."""
        if not self.needs_pad:
            return x
        if self._xpad is None:
            self._xpad = self.xp.full(self.padded_shape, self.fill, dtype=self.dtype)
        self._xpad[self.interior] = x
        return self._xpad

    def windows(self, x):
        """A strided view ``(B, C, *kernel, *out_shape)`` of every window of ``x``."""
        xp_ = self.padded(self.xp.ascontiguousarray(x))
        st = xp_.strides
        sp = st[2:]
        shape = self.shape[:2] + self.kernel + self.out_shape
        strides = (
            st[:2]
            + tuple(d * s for d, s in zip(self.dilation, sp, strict=True))
            + tuple(s * t for s, t in zip(self.stride, sp, strict=True))
        )
        return _as_strided(self.xp, xp_, shape, strides)

    def _col_buffer(self, channel_major: bool):
        buf = self._col.get(channel_major)
        if buf is None:
            b, c = self.shape[:2]
            shape = (c * self.K, b * self.O) if channel_major else (b, c * self.K,
                                                                    self.O)
            buf = self._col[channel_major] = self.xp.empty(shape, dtype=self.dtype)
        return buf

    def im2col(self, x, channel_major: bool = False, out=None):
        """The column matrix of ``x`` (a reused buffer unless ``out`` is given)."""
        win = self.windows(x)
        b, c = self.shape[:2]
        ns = len(self.kernel)
        col = self._col_buffer(channel_major) if out is None else out
        if channel_major:
            # (B, C, *k, *o) -> (C, *k, B, *o)
            perm = (1,) + tuple(range(2, 2 + ns)) + (0,) + tuple(
                range(2 + ns, 2 + 2 * ns))
            col.reshape((c,) + self.kernel + (b,) + self.out_shape)[...] = \
                win.transpose(perm)
        else:
            col.reshape(win.shape)[...] = win
        return col

    # -- col2im ---------------------------------------------------------------
    def accumulate(self, tap, out):
        """``out`` (overwritten) = sum over kernel offsets of ``tap(i, offset)``
        placed at that offset's strided positions; ``tap`` returns an array
        broadcastable to ``(B, C, *out_shape)``.
        """
        xp = self.xp
        if self.needs_pad:
            if self._dpad is None:
                self._dpad = xp.zeros(self.padded_shape, dtype=self.dtype)
            else:
                self._dpad.fill(0)
            target = self._dpad
        else:
            out[...] = 0
            target = out
        for i, off in enumerate(self.offsets):
            target[self._tap_slices[i]] += tap(i, off)
        if self.needs_pad:
            out[...] = self._dpad[self.interior]
        return out

    def col2im(self, col, out, channel_major: bool = False):
        """Adjoint of :meth:`im2col`: sum ``col``'s entries back into ``out``."""
        b, c = self.shape[:2]
        if channel_major:
            cv = col.reshape((c, self.K, b) + self.out_shape)

            def tap(i, _off):
                return cv[:, i].swapaxes(0, 1)
        else:
            cv = col.reshape((b, c, self.K) + self.out_shape)

            def tap(i, _off):
                return cv[:, :, i]

        return self.accumulate(tap, out)
