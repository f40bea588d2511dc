"""HDF5Output: appends its two bottoms to datasets "data" and "label" of a file.

Math: none; each forward appends ``bottom[0]`` to dataset ``data`` and
``bottom[1]`` to dataset ``label`` (along axis 0) of
``hdf5_output_param.file_name``. The file is created (emptied) at setup. Each
forward opens the file, appends and closes it again, so the file is complete
and readable between forwards and no handle stays open.

Bottoms: ``data`` (N, ...) and ``label`` (N, ...) with the same N.
Tops: none.
Learnable params: none.
Proto fields: hdf5_output_param { file_name }.
Gradients: none (backward does nothing, as in Caffe).
"""

from __future__ import annotations

import os

from recaffe import backend
from recaffe.errors import DataError, ShapeError
from recaffe.layer import Layer, register_layer

DATASET_NAMES = ("data", "label")


@register_layer
class HDF5OutputLayer(Layer):
    type = "HDF5Output"
    exact_num_bottom = 2
    exact_num_top = 0

    def setup(self, bottom, top):
        import h5py  # noqa: PLC0415

        self.file_name = self.layer_param.hdf5_output_param.file_name
        if not self.file_name:
            raise self.error("hdf5_output_param.file_name is required")
        directory = os.path.dirname(os.path.abspath(self.file_name))
        if not os.path.isdir(directory):
            raise self.error(f"cannot create '{self.file_name}': directory "
                             f"'{directory}' does not exist", DataError)
        try:
            with h5py.File(self.file_name, "w"):
                pass
        except OSError as exc:
            raise self.error(f"cannot create HDF5 file '{self.file_name}' ({exc})",
                             DataError) from None

    def reshape(self, bottom, top):
        for i, b in enumerate(bottom):
            if b.num_axes < 1:
                raise self.error(f"bottom[{i}] needs at least 1 axis, got shape "
                                 f"{b.shape}", ShapeError)
        if bottom[0].shape[0] != bottom[1].shape[0]:
            raise self.error(
                f"bottom[0] (data) and bottom[1] (label) must have the same first "
                f"dimension, got {bottom[0].shape} and {bottom[1].shape}", ShapeError)

    def forward(self, bottom, top):
        import h5py  # noqa: PLC0415

        try:
            with h5py.File(self.file_name, "a") as fh:
                for name, b in zip(DATASET_NAMES, bottom, strict=True):
                    a = backend.to_host(b.data)
                    if name not in fh:
                        fh.create_dataset(name, data=a, maxshape=(None,) + a.shape[1:],
                                          chunks=True)
                        continue
                    ds = fh[name]
                    if ds.shape[1:] != a.shape[1:]:
                        raise self.error(
                            f"bottom '{name}' has rows of shape {a.shape[1:]}, earlier "
                            f"forwards wrote rows of shape {ds.shape[1:]} to "
                            f"'{self.file_name}'", ShapeError)
                    n = ds.shape[0]
                    ds.resize(n + a.shape[0], axis=0)
                    ds[n:] = a
        except OSError as exc:
            raise self.error(f"cannot write HDF5 file '{self.file_name}' ({exc})",
                             DataError) from None

    def backward(self, top, propagate_down, bottom):
        pass
