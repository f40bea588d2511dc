"""Readers and writers of Caffe files, and pycaffe's ``caffe.io`` helpers.

File formats live in submodules (``prototxt``, ``caffemodel``, ``upgrade``, …).
This package also offers pycaffe's ``caffe.io`` functions under the same
names:

- blobs: :func:`blobproto_to_array`, :func:`array_to_blobproto`,
  :func:`arraylist_to_blobprotovector_str`, :func:`blobprotovector_str_to_arraylist`;
- database records: :func:`array_to_datum`, :func:`datum_to_array`;
- images: :class:`Transformer`, :func:`load_image`, :func:`resize_image`,
  :func:`oversample`.

Image reading needs scikit-image or Pillow; resizing uses scikit-image or
scipy when installed and a plain-numpy resize (nearest or bilinear) otherwise.
These imports happen on first use, so ``import recaffe.io`` stays light.
"""

from __future__ import annotations

import numpy as np

from recaffe.errors import DataError, RecaffeError
from recaffe.io.caffemodel import array_to_blobproto, blobproto_to_array
from recaffe.proto import caffe_pb2

__all__ = [
    "Transformer", "array_to_blobproto", "array_to_datum",
    "arraylist_to_blobprotovector_str", "blobproto_to_array",
    "blobprotovector_str_to_arraylist", "datum_to_array", "load_image",
    "oversample", "resize_image",
]


# -- blobs and datums -------------------------------------------------------------

def arraylist_to_blobprotovector_str(arraylist) -> bytes:
    """Serialized ``BlobProtoVector`` holding each array of ``arraylist``."""
    vec = caffe_pb2.BlobProtoVector()
    vec.blobs.extend([array_to_blobproto(arr) for arr in arraylist])
    return vec.SerializeToString()


def blobprotovector_str_to_arraylist(data: bytes) -> list[np.ndarray]:
    """The arrays of a serialized ``BlobProtoVector``."""
    vec = caffe_pb2.BlobProtoVector()
    vec.ParseFromString(data)
    return [blobproto_to_array(blob) for blob in vec.blobs]


def array_to_datum(arr, label=None) -> caffe_pb2.Datum:
    """A ``Datum`` from a (C, H, W) array: uint8 as bytes, else float_data.

    ``label`` is only set when given (so ``None`` leaves the field absent).
    """
    arr = np.asarray(arr)
    if arr.ndim != 3:
        raise ValueError("Incorrect array shape.")
    datum = caffe_pb2.Datum()
    datum.channels, datum.height, datum.width = (int(d) for d in arr.shape)
    if arr.dtype == np.uint8:
        datum.data = arr.tobytes()
    else:
        datum.float_data.extend(arr.astype(float).flat)
    if label is not None:
        datum.label = label
    return datum


def datum_to_array(datum) -> np.ndarray:
    """The (C, H, W) array of a ``Datum`` (uint8 from data, else float)."""
    shape = (datum.channels, datum.height, datum.width)
    if len(datum.data):
        return np.frombuffer(datum.data, dtype=np.uint8).reshape(shape)
    return np.array(datum.float_data).astype(float).reshape(shape)


# -- images -------------------------------------------------------------------------

def _missing(what: str, extra: str) -> RecaffeError:
    return RecaffeError(f"{what} needs {extra}, which is not installed: "
                        f"pip install {extra} (or pip install 'recaffe[image]')")


def load_image(filename: str, color: bool = True) -> np.ndarray:
    """An image as float32 H x W x K in [0, 1] (K = 3 with ``color``, else 1).

    Grayscale images are tiled to 3 channels when ``color``; an alpha channel
    is dropped.
    """
    try:
        import skimage.io  # noqa: PLC0415
        from skimage import img_as_float  # noqa: PLC0415

        img = img_as_float(skimage.io.imread(filename, as_gray=not color))
    except ImportError:
        try:
            from PIL import Image  # noqa: PLC0415
        except ImportError:
            raise _missing("load_image", "scikit-image or Pillow") from None
        try:
            with Image.open(filename) as im:
                raw = np.asarray(im.convert("RGB" if color else "L"))
        except OSError as exc:
            raise DataError(f"cannot read image {filename}: {exc}") from exc
        img = raw.astype(np.float32) / 255.0
    img = np.asarray(img, dtype=np.float32)
    if img.ndim == 2:
        img = img[:, :, np.newaxis]
        if color:
            img = np.tile(img, (1, 1, 3))
    elif img.shape[2] == 4:
        img = img[:, :, :3]
    return img


def _numpy_resize(im: np.ndarray, new_dims, order: int) -> np.ndarray:
    """Resize the first two axes by pixel-center sampling (order 0 or 1)."""
    h, w = im.shape[:2]
    nh, nw = int(new_dims[0]), int(new_dims[1])
    ys = (np.arange(nh) + 0.5) * (h / nh) - 0.5
    xs = (np.arange(nw) + 0.5) * (w / nw) - 0.5
    if order == 0:
        yi = np.clip(np.floor(ys + 0.5).astype(int), 0, h - 1)
        xi = np.clip(np.floor(xs + 0.5).astype(int), 0, w - 1)
        return im[yi][:, xi]
    ys = np.clip(ys, 0, h - 1)
    xs = np.clip(xs, 0, w - 1)
    y0 = np.floor(ys).astype(int)
    x0 = np.floor(xs).astype(int)
    y1 = np.minimum(y0 + 1, h - 1)
    x1 = np.minimum(x0 + 1, w - 1)
    wy = (ys - y0).reshape((-1, 1) + (1,) * (im.ndim - 2))
    wx = (xs - x0).reshape((1, -1) + (1,) * (im.ndim - 2))
    top = im[y0][:, x0] * (1 - wx) + im[y0][:, x1] * wx
    bottom = im[y1][:, x0] * (1 - wx) + im[y1][:, x1] * wx
    return top * (1 - wy) + bottom * wy


def _resize_unit(im: np.ndarray, new_dims, order: int) -> np.ndarray:
    try:
        import skimage.transform  # noqa: PLC0415

        return skimage.transform.resize(im, new_dims, order=order, mode="constant")
    except ImportError:
        pass
    try:
        import scipy.ndimage  # noqa: PLC0415

        scale = tuple(np.array(new_dims, dtype=float) / np.array(im.shape[:2]))
        return scipy.ndimage.zoom(im, scale + (1,) * (im.ndim - 2), order=order)
    except ImportError:
        pass
    if order not in (0, 1):
        raise _missing(f"resize_image with interp_order={order}", "scikit-image")
    return _numpy_resize(im, new_dims, order)


def resize_image(im, new_dims, interp_order: int = 1) -> np.ndarray:
    """Resize an H x W x K image to ``new_dims`` = (height, width); float32.

    Values are rescaled to [0, 1] for the interpolation and back, as pycaffe
    does; a constant image stays constant.
    """
    im = np.asarray(im)
    new_dims = tuple(int(d) for d in new_dims)
    if im.shape[-1] in (1, 3):
        im_min, im_max = float(im.min()), float(im.max())
        if im_max > im_min:
            im_std = (im - im_min) / (im_max - im_min)
            resized = _resize_unit(im_std, new_dims, interp_order)
            resized = resized * (im_max - im_min) + im_min
        else:
            resized = np.full(new_dims + (im.shape[-1],), im_min, dtype=np.float32)
    else:
        resized = _resize_unit(im.astype(np.float64), new_dims, interp_order)
    return np.asarray(resized, dtype=np.float32)


def oversample(images, crop_dims) -> np.ndarray:
    """Ten crops per image: 4 corners and center, then the same mirrored.

    ``images``: iterable of H x W x K arrays (same shape); ``crop_dims``:
    (height, width). Returns (10 * N) x h x w x K float32.
    """
    images = list(images)
    im_shape = np.array(images[0].shape)
    ch, cw = (int(d) for d in crop_dims)
    h, w = int(im_shape[0]), int(im_shape[1])
    corners = [(i, j) for i in (0, h - ch) for j in (0, w - cw)]
    cy = int(h / 2.0 - ch / 2.0)
    cx = int(w / 2.0 - cw / 2.0)
    starts = corners + [(cy, cx)]
    crops = np.empty((10 * len(images), ch, cw, int(im_shape[-1])), dtype=np.float32)
    ix = 0
    for im in images:
        for y, x in starts:
            crops[ix] = im[y:y + ch, x:x + cw, :]
            ix += 1
        for _ in range(5):
            crops[ix] = crops[ix - 5][:, ::-1, :]
            ix += 1
    return crops


class Transformer:
    """Turn H x W x K images into net input (K x H x W) and back.

    ``inputs`` maps an input blob name to its 4-D shape. Preprocessing order:
    resize to the input's spatial size, transpose, channel swap, raw scale,
    subtract mean, input scale; ``deprocess`` undoes them in reverse.
    """

    def __init__(self, inputs: dict):
        self.inputs = {k: tuple(v) for k, v in inputs.items()}
        self.transpose: dict = {}
        self.channel_swap: dict = {}
        self.raw_scale: dict = {}
        self.mean: dict = {}
        self.input_scale: dict = {}

    def _check_input(self, in_: str) -> None:
        if in_ not in self.inputs:
            raise RecaffeError(f"{in_} is not one of the net inputs: {self.inputs}")

    def preprocess(self, in_: str, data) -> np.ndarray:
        """H x W x K image -> K x H x W float32 net input for ``in_``."""
        self._check_input(in_)
        caffe_in = np.asarray(data).astype(np.float32, copy=True)
        in_dims = self.inputs[in_][2:]
        if caffe_in.shape[:2] != tuple(in_dims):
            caffe_in = resize_image(caffe_in, in_dims)
        transpose = self.transpose.get(in_)
        if transpose is not None:
            caffe_in = caffe_in.transpose(transpose)
        channel_swap = self.channel_swap.get(in_)
        if channel_swap is not None:
            caffe_in = caffe_in[list(channel_swap), :, :]
        raw_scale = self.raw_scale.get(in_)
        if raw_scale is not None:
            caffe_in *= raw_scale
        mean = self.mean.get(in_)
        if mean is not None:
            caffe_in -= mean
        input_scale = self.input_scale.get(in_)
        if input_scale is not None:
            caffe_in *= input_scale
        return caffe_in

    def deprocess(self, in_: str, data) -> np.ndarray:
        """Invert :meth:`preprocess` (except the resize)."""
        self._check_input(in_)
        decaf_in = np.array(data, copy=True).squeeze()
        input_scale = self.input_scale.get(in_)
        if input_scale is not None:
            decaf_in /= input_scale
        mean = self.mean.get(in_)
        if mean is not None:
            decaf_in += mean
        raw_scale = self.raw_scale.get(in_)
        if raw_scale is not None:
            decaf_in /= raw_scale
        channel_swap = self.channel_swap.get(in_)
        if channel_swap is not None:
            decaf_in = decaf_in[np.argsort(channel_swap), :, :]
        transpose = self.transpose.get(in_)
        if transpose is not None:
            decaf_in = decaf_in.transpose(np.argsort(transpose))
        return decaf_in

    def set_transpose(self, in_: str, order) -> None:
        """Axis order for the input, e.g. (2, 0, 1) for H x W x K -> K x H x W."""
        self._check_input(in_)
        if len(order) != len(self.inputs[in_]) - 1:
            raise RecaffeError("Transpose order needs to have the same number of "
                            "dimensions as the input.")
        self.transpose[in_] = tuple(order)

    def set_channel_swap(self, in_: str, order) -> None:
        """Channel order, e.g. (2, 1, 0) for RGB -> BGR (after transpose)."""
        self._check_input(in_)
        if len(order) != self.inputs[in_][1]:
            raise RecaffeError("Channel swap needs to have the same number of "
                            "dimensions as the input channels.")
        self.channel_swap[in_] = tuple(order)

    def set_raw_scale(self, in_: str, scale) -> None:
        """Multiply by ``scale`` before the mean (e.g. 255 for [0, 1] images)."""
        self._check_input(in_)
        self.raw_scale[in_] = scale

    def set_mean(self, in_: str, mean) -> None:
        """Mean to subtract: per channel (K,) or per pixel (K x H x W)."""
        self._check_input(in_)
        mean = np.asarray(mean)
        in_shape = self.inputs[in_][1:]
        if mean.ndim == 1:
            if mean.shape[0] != in_shape[0]:
                raise ValueError("Mean channels incompatible with input.")
            mean = mean[:, np.newaxis, np.newaxis]
        else:
            if mean.ndim == 2:
                mean = mean[np.newaxis]
            if mean.ndim != 3:
                raise ValueError("Mean shape invalid")
            if mean.shape[0] != in_shape[0]:
                raise ValueError("Mean shape incompatible with input shape.")
            if mean.shape[1:] != tuple(in_shape[1:]):
                mean = resize_image(mean.transpose((1, 2, 0)),
                                    in_shape[1:]).transpose((2, 0, 1))
        self.mean[in_] = mean

    def set_input_scale(self, in_: str, scale) -> None:
        """Multiply by ``scale`` after the mean subtraction."""
        self._check_input(in_)
        self.input_scale[in_] = scale
