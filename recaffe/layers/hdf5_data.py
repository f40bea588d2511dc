"""HDF5Data: serves rows of HDF5 datasets, one dataset per top name.

Math: ``top[j][i] = file[top_name_j][row_i]``: consecutive rows (axis 0) of the
current file, moving to the next file listed in ``source`` when one is used up
and wrapping around to the first file at the end. With ``shuffle`` the file
order is shuffled at setup and at each wrap-around, and the row order of a file
each time it is (re)started (random numbers from ``recaffe.backend.rng()``).

With N data-parallel ranks (:mod:`recaffe.parallel`), a TRAIN net's layer
keeps row k of this order (counted over all files) only on rank ``k mod N``
(Caffe's multi-GPU rule), so N ranks with batch B see the rows one process
with batch N·B sees.

``source`` is a text file listing ``.h5`` paths, one per line. A relative path
is taken relative to the working directory (as Caffe does) and, if no such
file exists there, relative to the list file's directory. Only the current
file's datasets are held in memory; files are closed as soon as they are read.

Bottoms: none.
Tops: one per dataset, named like the dataset; shape ``(batch_size,) +
dataset.shape[1:]``. All datasets of a file must have the same number of rows.
Learnable params: none.
Proto fields: hdf5_data_param { source batch_size shuffle }.
Gradients: none (no bottoms).
"""

from __future__ import annotations

import os

import numpy as np

from recaffe import backend
from recaffe.data_transformer import resolve_path
from recaffe.errors import DataError
from recaffe.layer import Layer, register_layer
from recaffe.parallel.shard import ItemFilter, train_shard


def read_source_list(source: str, where: str) -> list[str]:
    """The non-empty lines of list file ``source`` as resolved paths."""
    try:
        with open(source, encoding="utf-8") as fh:
            lines = [ln.strip() for ln in fh]
    except OSError as exc:
        raise DataError(
            f"{where}: cannot open source list file '{source}' "
            f"({exc.strerror or exc})"
        ) from None
    base = os.path.dirname(os.path.abspath(source))
    files = [resolve_path(ln, base) for ln in lines if ln and not ln.startswith("#")]
    if not files:
        raise DataError(f"{where}: source list file '{source}' lists no files")
    return files


@register_layer
class HDF5DataLayer(Layer):
    type = "HDF5Data"
    exact_num_bottom = 0
    min_top = 1

    def setup(self, bottom, top):
        p = self.layer_param.hdf5_data_param
        if not p.source:
            raise self.error("hdf5_data_param.source (a list of .h5 files) is required")
        self.batch_size = int(p.batch_size)
        if self.batch_size <= 0:
            raise self.error(f"hdf5_data_param.batch_size must be > 0, got "
                             f"{p.batch_size}")
        self.shuffle = bool(p.shuffle)
        names = list(self.layer_param.top)
        if len(names) != len(top):
            names = names + [f"top{i}" for i in range(len(names), len(top))]
        self.dataset_names = names
        where = f"{self.type} layer '{self.name or '(unnamed)'}'"
        self.files = read_source_list(p.source, where)
        for f in self.files:
            if not os.path.isfile(f):
                raise DataError(f"{where}: HDF5 file '{f}' listed in '{p.source}' "
                                f"does not exist")
        self.file_order = np.arange(len(self.files))
        if self.shuffle:
            backend.rng().shuffle(self.file_order)
        self.current_file = 0
        self._load_file(self.file_order[0])
        self._filter = ItemFilter(*train_shard(self.phase))
        for t, a in zip(top, self._arrays, strict=True):
            t.reshape((self.batch_size,) + a.shape[1:])

    def _load_file(self, index: int) -> None:
        import h5py  # noqa: PLC0415

        path = self.files[index]
        where = f"{self.type} layer '{self.name or '(unnamed)'}'"
        arrays = []
        try:
            with h5py.File(path, "r") as fh:
                for name in self.dataset_names:
                    if name not in fh:
                        raise DataError(
                            f"{where}: HDF5 file '{path}' has no dataset '{name}' "
                            f"(it has: {', '.join(sorted(fh.keys())) or 'nothing'})"
                        )
                    ds = fh[name]
                    if not isinstance(ds, h5py.Dataset):
                        raise DataError(f"{where}: '{name}' in HDF5 file '{path}' is "
                                        f"a group, not a dataset")
                    if ds.ndim < 1:
                        raise DataError(f"{where}: dataset '{name}' in '{path}' is a "
                                        f"scalar; it needs at least 1 axis (rows)")
                    if ds.dtype.kind not in "biuf":
                        raise DataError(f"{where}: dataset '{name}' in '{path}' has "
                                        f"non-numeric type {ds.dtype}")
                    arrays.append(np.asarray(ds[...]))
        except OSError as exc:
            raise DataError(
                f"{where}: cannot read HDF5 file '{path}' ({exc})") from None
        rows = arrays[0].shape[0]
        for name, a in zip(self.dataset_names, arrays, strict=True):
            if a.shape[0] != rows:
                raise DataError(
                    f"{where}: datasets in HDF5 file '{path}' must have the same "
                    f"number of rows: '{self.dataset_names[0]}' has {rows}, "
                    f"'{name}' has {a.shape[0]}"
                )
        if rows == 0:
            raise DataError(f"{where}: HDF5 file '{path}' has datasets with 0 rows")
        if hasattr(self, "_arrays"):
            for name, old, a in zip(self.dataset_names, self._arrays, arrays,
                                    strict=True):
                if old.shape[1:] != a.shape[1:]:
                    raise DataError(
                        f"{where}: dataset '{name}' in '{path}' has rows of shape "
                        f"{a.shape[1:]}, earlier files had {old.shape[1:]}"
                    )
        self._arrays = arrays
        self._path = path
        self.rows = rows
        self.row_order = np.arange(rows)
        if self.shuffle:
            backend.rng().shuffle(self.row_order)
        self.current_row = 0

    def _next_row(self) -> None:
        self.current_row += 1
        if self.current_row < self.rows:
            return
        if len(self.files) > 1:
            self.current_file += 1
            if self.current_file == len(self.files):
                self.current_file = 0
                if self.shuffle:
                    backend.rng().shuffle(self.file_order)
            self._load_file(self.file_order[self.current_file])
        else:
            self.current_row = 0
            if self.shuffle:
                backend.rng().shuffle(self.row_order)

    def reshape(self, bottom, top):
        for t, a in zip(top, self._arrays, strict=True):
            t.reshape((self.batch_size,) + a.shape[1:])

    def forward(self, bottom, top):
        hosts = [np.empty(t.shape, dtype=t.dtype) for t in top]
        if self._filter.active:
            self._forward_shard(hosts)
        else:
            filled = 0
            while filled < self.batch_size:
                n = min(self.batch_size - filled, self.rows - self.current_row)
                rows = self.row_order[self.current_row:self.current_row + n]
                for h, a in zip(hosts, self._arrays, strict=True):
                    h[filled:filled + n] = a[rows]
                filled += n
                self.current_row += n - 1
                self._next_row()
        for t, h in zip(top, hosts, strict=True):
            t.data[...] = backend.to_device(h, self.xp)

    def _forward_shard(self, hosts) -> None:
        """Fill ``hosts`` with this rank's rows, passing over the others'."""
        for i in range(self.batch_size):
            self._filter.skip(self._next_row)
            row = self.row_order[self.current_row]
            for h, a in zip(hosts, self._arrays, strict=True):
                h[i] = a[row]
            self._next_row()
