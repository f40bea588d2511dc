"""Caffe's ``TransformationParameter`` applied to data items and batches.

For an item ``x`` of shape (C, H, W) (uint8 or float) the result is

    y = crop(mirror((x - mean) * scale))

- ``mean`` comes from ``mean_file`` (a BlobProto of shape (1, C, H, W) or
  (C, H, W), the size of the *uncropped* item) or from ``mean_value`` (one
  value for all channels, or one per channel); giving both is an error.
- ``crop_size`` > 0 cuts a ``crop_size`` x ``crop_size`` window: at a random
  offset in TRAIN, centred (offset ``(H - crop_size) // 2``) in TEST.
- ``mirror`` flips the width axis with probability 1/2, in TRAIN only.

Randomness comes from :func:`recaffe.backend.rng`, drawn per item in Caffe's
order (mirror coin first, then the crop offsets). ``force_color`` and
``force_gray`` only matter when decoding encoded images (see
:func:`decode_image`).

Datum helpers: :func:`datum_to_array` turns a ``Datum`` (raw ``data`` bytes,
``float_data`` or an encoded image) into a (C, H, W) array.
"""

from __future__ import annotations

import io
import os

import numpy as np

from recaffe import backend
from recaffe.errors import DataError, LayerSetupError
from recaffe.proto import caffe_pb2

__all__ = [
    "DataTransformer",
    "datum_to_array",
    "decode_image",
    "load_image_file",
    "load_mean_file",
    "transform_param_of",
]

_PILLOW_HINT = "pip install Pillow (or pip install 'recaffe[image]')"


def load_mean_file(path: str) -> np.ndarray:
    """The (C, H, W) float32 mean stored in a BlobProto ``.binaryproto`` file."""
    from recaffe.io.caffemodel import blobproto_to_array  # noqa: PLC0415

    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise DataError(
            f"mean_file '{path}': cannot open ({exc.strerror or exc})"
        ) from None
    blob = caffe_pb2.BlobProto()
    try:
        blob.ParseFromString(raw)
        mean = blobproto_to_array(blob)
    except Exception as exc:  # noqa: BLE001 - protobuf and numpy raise many types
        raise DataError(f"mean_file '{path}': not a valid BlobProto ({exc})") from None
    if mean.ndim == 4 and mean.shape[0] == 1:
        mean = mean[0]
    if mean.ndim != 3 or mean.size == 0:
        raise DataError(
            f"mean_file '{path}': expected a (1, C, H, W) mean blob, got shape "
            f"{mean.shape}"
        )
    return np.ascontiguousarray(mean, dtype=np.float32)


def transform_param_of(layer_param, legacy=None):
    """The layer's ``transform_param``; deprecated fields of ``legacy`` fill gaps.

    ``legacy`` is a ``DataParameter`` or ``ImageDataParameter`` whose old
    ``scale``/``mean_file``/``crop_size``/``mirror`` fields are used when the
    layer has no ``transform_param``.
    """
    if layer_param.HasField("transform_param") or legacy is None:
        return layer_param.transform_param
    tp = caffe_pb2.TransformationParameter()
    for name in ("scale", "mean_file", "crop_size", "mirror"):
        if legacy.HasField(name):
            setattr(tp, name, getattr(legacy, name))
    return tp


def decode_image(raw: bytes, color: bool | None = None) -> np.ndarray:
    """Decode an encoded image (JPEG, PNG, ...) to a uint8 (C, H, W) array.

    Channels are in Caffe's (OpenCV's) order: BGR for colour images. ``color``
    True forces 3 channels, False forces 1, None keeps the file's own.
    """
    try:
        from PIL import Image  # noqa: PLC0415
    except ImportError:
        raise DataError(
            f"decoding encoded images needs Pillow, which is not installed: "
            f"{_PILLOW_HINT}"
        ) from None
    try:
        img = Image.open(io.BytesIO(raw))
        img.load()
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types
        raise DataError(f"cannot decode encoded image ({exc})") from None
    if color is None:
        color = img.mode not in ("L", "1", "I", "I;16", "F")
    img = img.convert("RGB" if color else "L")
    a = np.asarray(img, dtype=np.uint8)
    if color:
        return np.ascontiguousarray(a[:, :, ::-1].transpose(2, 0, 1))
    return a[None, :, :].copy()


def load_image_file(path: str, resize=None, color: bool = True) -> np.ndarray:
    """A uint8 (C, H, W) image file (BGR if ``color``, else 1 grey channel),
    resized to ``resize = (height, width)`` unless None or (0, 0)."""
    try:
        from PIL import Image  # noqa: PLC0415
    except ImportError:
        raise DataError(
            f"reading images needs Pillow, which is not installed: {_PILLOW_HINT}"
        ) from None
    try:
        with Image.open(path) as img:
            img = img.convert("RGB" if color else "L")
            if resize is not None and tuple(resize) != (0, 0):
                h, w = (int(s) for s in resize)
                img = img.resize((w, h), Image.BILINEAR)
            a = np.asarray(img, dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"cannot read image '{path}' ({exc})") from None
    if color:
        return np.ascontiguousarray(a[:, :, ::-1].transpose(2, 0, 1))
    return a[None].copy()


def datum_to_array(datum, color: bool | None = None) -> np.ndarray:
    """A ``Datum``'s values as a (C, H, W) array (uint8 or float32).

    Raw ``data`` bytes win over ``float_data`` (as in Caffe); ``encoded``
    datums are decoded with :func:`decode_image`.
    """
    if datum.encoded:
        return decode_image(datum.data, color)
    shape = (int(datum.channels), int(datum.height), int(datum.width))
    n = shape[0] * shape[1] * shape[2]
    if datum.data:
        a = np.frombuffer(datum.data, dtype=np.uint8)
    else:
        a = np.asarray(datum.float_data, dtype=np.float32)
    if a.size != n:
        raise DataError(
            f"Datum has {a.size} values but channels x height x width = "
            f"{shape[0]} x {shape[1]} x {shape[2]} = {n}"
        )
    return a.reshape(shape)


class DataTransformer:
    """Applies one ``TransformationParameter`` in one phase.

    Args:
        param: the ``TransformationParameter`` (None: identity).
        phase: ``caffe_pb2.TRAIN`` or ``caffe_pb2.TEST``.
        where: prefix for error messages, e.g. ``"Data layer 'data'"``.
    """

    def __init__(self, param=None, phase: int = caffe_pb2.TRAIN, where: str = ""):
        if param is None:
            param = caffe_pb2.TransformationParameter()
        self.param = param
        self.phase = int(phase)
        self.where = where
        self.scale = float(param.scale)
        self.crop_size = int(param.crop_size)
        self.mirror = bool(param.mirror)
        self.mean_file = None
        if param.HasField("mean_file") and param.mean_file:
            if len(param.mean_value):
                raise self._error(
                    "cannot specify mean_file and mean_value at the same time",
                    LayerSetupError,
                )
            path = param.mean_file
            try:
                self.mean_file = load_mean_file(path)
            except DataError as exc:
                raise self._error(str(exc)) from None
        self.mean_value = np.asarray(list(param.mean_value), dtype=np.float32)

    def _error(self, msg: str, cls=DataError):
        return cls(f"{self.where}: {msg}" if self.where else msg)

    @property
    def color(self) -> bool | None:
        """Colour choice for decoding encoded images (force_color/force_gray)."""
        if self.param.force_color:
            return True
        if self.param.force_gray:
            return False
        return None

    # -- shapes ----------------------------------------------------------------
    def infer_shape(self, shape) -> tuple[int, int, int]:
        """Output (C, H', W') of an input item of ``shape`` (C, H, W)."""
        if len(shape) != 3:
            raise self._error(f"expected a (C, H, W) item, got shape {tuple(shape)}")
        c, h, w = (int(d) for d in shape)
        if self.crop_size:
            if self.crop_size > h or self.crop_size > w:
                raise self._error(
                    f"crop_size {self.crop_size} is larger than the data "
                    f"({h} x {w})"
                )
            return c, self.crop_size, self.crop_size
        return c, h, w

    def _mean_for(self, shape):
        c, h, w = shape
        if self.mean_file is not None:
            if self.mean_file.shape != (c, h, w):
                raise self._error(
                    f"mean_file '{self.param.mean_file}' has shape "
                    f"{self.mean_file.shape}, the data has shape {(c, h, w)}"
                )
            return self.mean_file
        nv = self.mean_value.size
        if nv == 0:
            return None
        if nv == 1:
            return self.mean_value[0]
        if nv != c:
            raise self._error(
                f"give either 1 mean_value or as many as channels ({c}), got {nv}"
            )
        return self.mean_value.reshape(c, 1, 1)

    # -- transforms ------------------------------------------------------------
    def transform(self, item, out=None, dtype=np.float32) -> np.ndarray:
        """Transform one (C, H, W) item into ``out`` (host array) or a new one."""
        item = np.asarray(item)
        oshape = self.infer_shape(item.shape)
        if out is None:
            out = np.empty(oshape, dtype=dtype)
        elif tuple(out.shape) != oshape:
            raise self._error(
                f"transformed item has shape {oshape}, the output has {out.shape}"
            )
        rng = backend.rng()
        do_mirror = self.mirror and self.phase == caffe_pb2.TRAIN and bool(
            rng.integers(2))
        _, h, w = item.shape
        h_off = w_off = 0
        if self.crop_size:
            cs = self.crop_size
            if self.phase == caffe_pb2.TRAIN:
                h_off = int(rng.integers(h - cs + 1))
                w_off = int(rng.integers(w - cs + 1))
            else:
                h_off = (h - cs) // 2
                w_off = (w - cs) // 2
        mean = self._mean_for(item.shape)
        x = item.astype(out.dtype, copy=True) if mean is not None else item
        if mean is not None:
            x -= mean.astype(out.dtype) if isinstance(mean, np.ndarray) else mean
        x = x[:, h_off:h_off + oshape[1], w_off:w_off + oshape[2]]
        if do_mirror:
            x = x[:, :, ::-1]
        np.multiply(x, out.dtype.type(self.scale), out=out, casting="unsafe")
        return out

    def transform_datum(self, datum, out=None, dtype=np.float32) -> np.ndarray:
        """Transform one ``Datum`` (decoded as needed)."""
        try:
            item = datum_to_array(datum, self.color)
        except DataError as exc:
            raise self._error(str(exc)) from None
        return self.transform(item, out, dtype)

    def transform_batch(self, batch, out=None, dtype=np.float32) -> np.ndarray:
        """Transform each item of an (N, C, H, W) batch (random choices per item)."""
        batch = np.asarray(batch)
        if batch.ndim != 4:
            raise self._error(
                f"expected an (N, C, H, W) batch, got shape {batch.shape}")
        oshape = (batch.shape[0],) + self.infer_shape(batch.shape[1:])
        if out is None:
            out = np.empty(oshape, dtype=dtype)
        for i in range(batch.shape[0]):
            self.transform(batch[i], out[i])
        return out

    @property
    def is_identity(self) -> bool:
        return (self.scale == 1.0 and not self.crop_size and not self.mirror
                and self.mean_file is None and self.mean_value.size == 0)


def resolve_path(path: str, base_dir: str | None) -> str:
    """``path`` if it exists (relative to the working directory), else relative
    to ``base_dir`` when that exists; otherwise ``path`` unchanged."""
    if os.path.isabs(path) or os.path.exists(path) or not base_dir:
        return path
    alt = os.path.join(base_dir, path)
    return alt if os.path.exists(alt) else path
