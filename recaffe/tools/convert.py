"""Convert data to LMDB databases of ``Datum`` records, and compute mean images.

Functions (each raises :class:`~recaffe.errors.DataError` on bad input):

- :func:`arrays_to_lmdb`: (N, C, H, W) uint8 or float images + (N,) integer
  labels -> LMDB with keys ``"%08d" % i`` (Caffe's zero-padded index). uint8
  images are stored as raw ``data`` bytes (or PNG-encoded with
  ``encoded=True``), float images as ``float_data``.
- :func:`hdf5_to_lmdb`: two datasets of an HDF5 file -> LMDB.
- :func:`folder_to_lmdb`: images listed in a ``"path label"`` file (Caffe's
  convert_imageset format) or one sub-folder per class -> LMDB with keys
  ``"%08d_<path>"``; needs Pillow. Colour images are stored BGR, as Caffe.
- :func:`compute_image_mean`: the mean (1, C, H, W) of an LMDB's items, written
  as a BlobProto ``.binaryproto`` (Caffe's compute_image_mean).

:func:`main` implements ``recaffe convert`` and :func:`main_mean`
``recaffe compute_image_mean``.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
from google.protobuf.message import DecodeError

from recaffe.cli.common import DefaultsHelpFormatter
from recaffe.errors import DataError, RecaffeError
from recaffe.proto import caffe_pb2

__all__ = [
    "arrays_to_lmdb",
    "compute_image_mean",
    "folder_to_lmdb",
    "hdf5_to_lmdb",
    "main",
    "main_mean",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm",
                    ".tif", ".tiff", ".webp")


def _pillow():
    try:
        from PIL import Image  # noqa: PLC0415
    except ImportError:
        raise DataError(
            "image conversion needs Pillow, which is not installed: pip install "
            "Pillow (or pip install 'recaffe[image]')"
        ) from None
    return Image


def _as_nchw(images: np.ndarray) -> np.ndarray:
    if images.ndim == 2:
        return images[:, :, None, None]
    if images.ndim == 3:
        return images[:, None, :, :]
    if images.ndim == 4:
        return images
    raise DataError(f"images must have 2 to 4 axes ((N, C, H, W) preferred), got "
                    f"shape {images.shape}")


def _encode_png(item: np.ndarray) -> bytes:
    """PNG bytes of a uint8 (C, H, W) item with BGR channels (C = 1 or 3)."""
    import io  # noqa: PLC0415

    image = _pillow()
    c = item.shape[0]
    if c == 1:
        img = image.fromarray(np.ascontiguousarray(item[0]), mode=None)
    elif c == 3:
        img = image.fromarray(np.ascontiguousarray(item[::-1].transpose(1, 2, 0)))
    else:
        raise DataError(f"encoded=True needs 1 or 3 channels, got {c}")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _make_datum(item: np.ndarray, label: int, encoded: bool = False):
    d = caffe_pb2.Datum()
    d.channels, d.height, d.width = (int(s) for s in item.shape)
    d.label = int(label)
    if encoded:
        d.data = _encode_png(item)
        d.encoded = True
    elif item.dtype == np.uint8:
        d.data = np.ascontiguousarray(item).tobytes()
    else:
        d.float_data.extend(np.asarray(item, dtype=np.float32).ravel().tolist())
    return d


def _check_labels(labels, n: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim > 1 and labels.size == n:
        labels = labels.reshape(-1)
    if labels.ndim != 1 or labels.shape[0] != n:
        raise DataError(f"need one label per image ({n}), got labels of shape "
                        f"{np.shape(labels)}")
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
            raise DataError("labels must be integers (Datum.label is an int32)")
    elif labels.dtype.kind not in "biu":
        raise DataError(f"labels must be integers, got dtype {labels.dtype}")
    if n and (labels.min() < -(2**31) or labels.max() >= 2**31):
        raise DataError("labels must fit in int32")
    return labels.astype(np.int64)


def arrays_to_lmdb(images, labels, path: str, encoded: bool = False,
                   overwrite: bool = False) -> int:
    """Write ``images`` (N, C, H, W) and ``labels`` (N,) to a new LMDB at ``path``.

    Args:
        images: uint8 (stored as bytes) or float (stored as float_data) array;
            (N, H, W) gets C = 1 and (N, D) becomes (N, D, 1, 1).
        labels: N integers.
        path: the LMDB directory to create (must not exist unless ``overwrite``).
        encoded: store PNG-encoded images (uint8, 1 or 3 channels; needs Pillow).
        overwrite: replace an existing LMDB at ``path``.

    Returns:
        The number of records written.
    """
    from recaffe.io.db import LMDBWriter  # noqa: PLC0415

    images = _as_nchw(np.asarray(images))
    if images.dtype.kind not in "biuf":
        raise DataError(f"images must be numeric, got dtype {images.dtype}")
    if images.dtype.kind in "biu" and images.dtype != np.uint8:
        if images.size and (images.min() < 0 or images.max() > 255):
            raise DataError("integer images must be in [0, 255] (stored as uint8)")
        images = images.astype(np.uint8)
    if encoded and images.dtype != np.uint8:
        raise DataError("encoded=True needs uint8 images (float images cannot be "
                        "encoded as PNG)")
    n = images.shape[0]
    labels = _check_labels(labels, n)
    if encoded:
        _pillow()
    with LMDBWriter(path, overwrite=overwrite) as w:
        for i in range(n):
            d = _make_datum(images[i], labels[i], encoded)
            w.put(b"%08d" % i, d.SerializeToString())
        return w.count


def hdf5_to_lmdb(h5path: str, data_key: str, label_key: str, path: str,
                 encoded: bool = False, overwrite: bool = False) -> int:
    """Write datasets ``data_key`` and ``label_key`` of ``h5path`` to an LMDB."""
    import h5py  # noqa: PLC0415

    try:
        with h5py.File(h5path, "r") as fh:
            arrays = []
            for key in (data_key, label_key):
                if key not in fh:
                    raise DataError(
                        f"HDF5 file '{h5path}' has no dataset '{key}' (it has: "
                        f"{', '.join(sorted(fh.keys())) or 'nothing'})")
                arrays.append(np.asarray(fh[key][...]))
    except OSError as exc:
        raise DataError(f"cannot read HDF5 file '{h5path}' ({exc})") from None
    return arrays_to_lmdb(arrays[0], arrays[1], path, encoded=encoded,
                          overwrite=overwrite)


def _list_images(root: str, list_file: str | None) -> list[tuple[str, int]]:
    if list_file is not None:
        try:
            with open(list_file, encoding="utf-8") as fh:
                lines = [ln.strip() for ln in fh]
        except OSError as exc:
            raise DataError(f"cannot open list file '{list_file}' "
                            f"({exc.strerror or exc})") from None
        out = []
        for lineno, ln in enumerate(lines, 1):
            if not ln:
                continue
            name, sep, label = ln.rpartition(" ")
            if not sep:
                raise DataError(f"{list_file}:{lineno}: expected 'path label', got "
                                f"{ln!r}")
            try:
                out.append((name.strip(), int(label)))
            except ValueError:
                raise DataError(f"{list_file}:{lineno}: label {label!r} is not an "
                                "integer") from None
        return out
    if not os.path.isdir(root):
        raise DataError(f"image folder '{root}' does not exist")
    classes = sorted(d for d in os.listdir(root)
                     if os.path.isdir(os.path.join(root, d)))
    if not classes:
        raise DataError(f"image folder '{root}' has no sub-folders (one per class); "
                        "give a list file of 'path label' lines instead")
    out = []
    for label, cls in enumerate(classes):
        for f in sorted(os.listdir(os.path.join(root, cls))):
            if f.lower().endswith(IMAGE_EXTENSIONS):
                out.append((f"{cls}/{f}", label))
    return out


def load_image(path: str, resize=None, gray: bool = False) -> np.ndarray:
    """A uint8 (C, H, W) image (BGR for colour, as Caffe), optionally resized
    to ``resize = (height, width)``."""
    from recaffe.data_transformer import load_image_file  # noqa: PLC0415

    return load_image_file(path, resize, color=not gray)


def folder_to_lmdb(root: str, list_file: str | None, path: str, resize=None,
                   gray: bool = False, encoded: bool = False, shuffle: bool = False,
                   overwrite: bool = False, seed: int | None = None) -> int:
    """Write images under ``root`` to a new LMDB at ``path``.

    Args:
        root: folder the image paths are relative to.
        list_file: file of ``"relative/path label"`` lines; None: each
            sub-folder of ``root`` is a class, labelled 0, 1, ... in sorted order.
        path: the LMDB directory to create.
        resize: (height, width) to resize every image to, or None.
        gray: store 1-channel grey images instead of 3-channel BGR.
        encoded: store PNG-encoded images instead of raw pixels.
        shuffle: shuffle the order of the records (``seed`` for reproducibility).
        overwrite: replace an existing LMDB at ``path``.

    Returns:
        The number of records written.
    """
    from recaffe.io.db import LMDBWriter  # noqa: PLC0415

    _pillow()
    entries = _list_images(root, list_file)
    if not entries:
        raise DataError(f"no images found under '{root}'")
    if shuffle:
        order = np.random.default_rng(seed).permutation(len(entries))
        entries = [entries[i] for i in order]
    with LMDBWriter(path, overwrite=overwrite) as w:
        for i, (name, label) in enumerate(entries):
            item = load_image(os.path.join(root, name), resize, gray)
            d = _make_datum(item, label, encoded)
            w.put(f"{i:08d}_{name}".encode(), d.SerializeToString())
        return w.count


def compute_image_mean(lmdb_path: str, out_binaryproto: str | None = None,
                       backend: int = 1) -> np.ndarray:
    """Mean (1, C, H, W) float32 of every record of a Datum database.

    Writes it as a BlobProto (legacy num/channels/height/width fields, as
    Caffe's compute_image_mean) to ``out_binaryproto`` when given.
    """
    from recaffe.data_transformer import datum_to_array  # noqa: PLC0415
    from recaffe.io.atomic import atomic_write  # noqa: PLC0415
    from recaffe.io.db import open_db  # noqa: PLC0415

    total = None
    count = 0
    with open_db(lmdb_path, backend) as cur:
        first = cur.key()
        while True:
            d = caffe_pb2.Datum()
            try:
                d.ParseFromString(cur.value())
                a = datum_to_array(d)
            except (DataError, DecodeError) as exc:
                raise DataError(f"'{lmdb_path}': record {cur.key()!r}: {exc}") from None
            if total is None:
                total = np.zeros(a.shape, dtype=np.float64)
            elif a.shape != total.shape:
                raise DataError(
                    f"'{lmdb_path}': record {cur.key()!r} has shape {a.shape}, "
                    f"earlier records {total.shape}; all must have the same size")
            total += a
            count += 1
            cur.next()
            if cur.key() == first:
                break
    mean = (total / count).astype(np.float32)[None]
    if out_binaryproto is not None:
        blob = caffe_pb2.BlobProto()
        blob.num, blob.channels, blob.height, blob.width = mean.shape
        blob.data.extend(mean.ravel().tolist())
        atomic_write(out_binaryproto, blob.SerializeToString())
    return mean


def _load_npz(path: str, data_key: str, label_key: str):
    try:
        with np.load(path) as z:
            missing = [k for k in (data_key, label_key) if k not in z.files]
            if missing:
                raise DataError(f"'{path}' has no array {missing[0]!r} (it has: "
                                f"{', '.join(z.files) or 'nothing'}); use "
                                "--data-key/--label-key")
            return z[data_key], z[label_key]
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read '{path}' ({exc})") from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        formatter_class=DefaultsHelpFormatter,
        prog="recaffe convert",
        description="Convert arrays (.npz), HDF5 datasets or image folders to an "
                    "LMDB of Datum records for the Data layer.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--npz", metavar="X.npz", help="numpy archive with images "
                     "and labels arrays")
    src.add_argument("--hdf5", metavar="X.h5", help="HDF5 file with images and "
                     "labels datasets")
    src.add_argument("--images", metavar="DIR", help="image folder (one sub-folder "
                     "per class, or see --list)")
    p.add_argument("--out", required=True, metavar="DB", help="LMDB to create")
    p.add_argument("--data-key", default="data", help="array/dataset of images "
                   "(default: data)")
    p.add_argument("--label-key", default="label", help="array/dataset of labels "
                   "(default: label)")
    p.add_argument("--list", metavar="FILE", help="with --images: 'path label' "
                   "lines, paths relative to DIR")
    p.add_argument("--resize", nargs=2, type=int, metavar=("H", "W"),
                   help="with --images: resize to H x W")
    p.add_argument("--gray", action="store_true", help="with --images: grey images")
    p.add_argument("--shuffle", action="store_true", help="with --images: shuffle")
    p.add_argument("--encoded", action="store_true", help="store PNG-encoded images")
    p.add_argument("--overwrite", action="store_true", help="replace an existing DB")
    p.add_argument("--mean", metavar="mean.binaryproto", help="also write the mean "
                   "image")
    return p


def main(argv=None) -> int:
    """``recaffe convert``: returns the exit status (errors print one line)."""
    args = _parser().parse_args(argv)
    try:
        if args.npz:
            data, labels = _load_npz(args.npz, args.data_key, args.label_key)
            n = arrays_to_lmdb(data, labels, args.out, encoded=args.encoded,
                               overwrite=args.overwrite)
        elif args.hdf5:
            n = hdf5_to_lmdb(args.hdf5, args.data_key, args.label_key, args.out,
                             encoded=args.encoded, overwrite=args.overwrite)
        else:
            n = folder_to_lmdb(args.images, args.list, args.out, resize=args.resize,
                               gray=args.gray, encoded=args.encoded,
                               shuffle=args.shuffle, overwrite=args.overwrite)
        print(f"Processed {n} files.")
        if args.mean:
            compute_image_mean(args.out, args.mean)
            print(f"Wrote mean image to {args.mean}")
    except RecaffeError as exc:
        print(f"recaffe convert: error: {exc}", file=sys.stderr)
        return 1
    return 0


def main_mean(argv=None) -> int:
    """``recaffe compute_image_mean DB mean.binaryproto``."""
    p = argparse.ArgumentParser(
        formatter_class=DefaultsHelpFormatter,
        prog="recaffe compute_image_mean",
        description="Compute the mean image of a Datum database.")
    p.add_argument("db", help="input database")
    p.add_argument("out", nargs="?", help="output mean .binaryproto")
    p.add_argument("--backend", choices=("lmdb", "leveldb"), default="lmdb",
                   help="database backend")
    args = p.parse_args(argv)
    try:
        mean = compute_image_mean(args.db, args.out,
                                  backend=1 if args.backend == "lmdb" else 0)
    except RecaffeError as exc:
        print(f"recaffe compute_image_mean: error: {exc}", file=sys.stderr)
        return 1
    for c in range(mean.shape[1]):
        print(f"mean_value channel [{c}]: {float(mean[0, c].mean()):g}")
    return 0
