"""Weights in and out of a Net: binary .caffemodel and HDF5 .caffemodel.h5.

Binary files are a ``NetParameter`` whose layers carry their blobs; loading
matches layers by name (the first target layer of that name), requires equal
blob counts and shapes (legacy 4-D source shapes compare right-aligned), and
leaves layers absent from the file as they are. HDF5 files hold ``/data/<layer>/
<j>`` for parameters the layer owns (sharers are skipped), optionally ``/diff``.
"""

from __future__ import annotations

import numpy as np

from recaffe import backend
from recaffe.errors import WeightsError
from recaffe.io.atomic import atomic_open
from recaffe.io.caffemodel import (
    array_to_blobproto,
    blobproto_to_array,
    is_hdf5,
    read_net_param_binary,
    write_net_param_binary,
)
from recaffe.io.upgrade import upgrade_net_param
from recaffe.log import logger
from recaffe.proto import caffe_pb2


def _legacy_shape_matches(bp, shape) -> bool:
    if len(shape) > 4:
        return False
    padded = (1,) * (4 - len(shape)) + tuple(shape)
    return padded == (bp.num, bp.channels, bp.height, bp.width)


def _has_legacy(bp) -> bool:
    return any(bp.HasField(f) for f in ("num", "channels", "height", "width"))


class NetWeightsMixin:
    """Weight-file methods of :class:`recaffe.net.Net`."""

    def to_proto(self, write_diff: bool = False):
        """The net as a NetParameter with every layer's blobs (Caffe's ToProto)."""
        out = caffe_pb2.NetParameter()
        out.name = self.name
        for layer in self.layers_list:
            lp = out.layer.add()
            lp.CopyFrom(layer.layer_param)
            del lp.blobs[:]
            for b in layer.blobs:
                # Read-only host views: saving marks nothing as changed.
                bp = array_to_blobproto(
                    backend.to_host(b.host_data()),
                    backend.to_host(b.host_diff()) if write_diff else None,
                )
                lp.blobs.add().CopyFrom(bp)
        return out

    def save(self, path: str, write_diff: bool = False) -> None:
        """Write a binary .caffemodel (atomically)."""
        write_net_param_binary(self.to_proto(write_diff), path)

    def copy_from(self, path) -> None:
        """Load weights by layer name from a .caffemodel or .caffemodel.h5.

        ``path`` may list several files separated by commas (Caffe's -weights).
        """
        for p in str(path).split(","):
            p = p.strip()
            if not p:
                continue
            if is_hdf5(p):
                self.load_hdf5(p)
            else:
                param = read_net_param_binary(p)
                upgrade_net_param(param)
                self.copy_trained_layers_from(param, source=p)

    def copy_trained_layers_from(self, param, source: str = "<NetParameter>") -> None:
        for src in param.layer:
            idx = self._layer_by_name.get(src.name)
            if idx is None:
                logger.info(f"Ignoring source layer {src.name}")
                continue
            layer = self.layers_list[idx]
            if len(src.blobs) != len(layer.blobs):
                raise WeightsError(
                    f"{source}: incompatible number of blobs for layer '{src.name}': "
                    f"file has {len(src.blobs)}, net expects {len(layer.blobs)}"
                )
            for j, (bp, blob) in enumerate(zip(src.blobs, layer.blobs, strict=True)):
                if _has_legacy(bp):
                    ok = _legacy_shape_matches(bp, blob.shape)
                    got = (bp.num, bp.channels, bp.height, bp.width)
                else:
                    got = tuple(bp.shape.dim)
                    ok = got == tuple(blob.shape)
                if not ok:
                    raise WeightsError(
                        f"{source}: cannot copy param {j} weights from layer "
                        f"'{src.name}'; shape mismatch. Source param shape is {got}; "
                        f"target param shape is {tuple(blob.shape)}. To learn this "
                        "layer's parameters from scratch rather than copying from a "
                        "saved net, rename the layer."
                    )
                try:
                    arr = blobproto_to_array(bp)
                except ValueError as exc:
                    raise WeightsError(
                        f"{source}: layer '{src.name}' param {j}: {exc}"
                    ) from exc
                backend.copy_into(
                    blob.data, np.asarray(arr, dtype=blob.dtype).reshape(blob.shape))

    def save_hdf5(self, path: str, write_diff: bool = False) -> None:
        import h5py  # noqa: PLC0415

        owned = {self.param_layer_indices[i] for i, o in enumerate(self.param_owners)
                 if o < 0}
        with atomic_open(path, "wb") as fh, h5py.File(fh, "w") as f:
            groups = [f.create_group("data")]
            if write_diff:
                groups.append(f.create_group("diff"))
            for i, layer in enumerate(self.layers_list):
                name = self.layer_names[i]
                for gi, g in enumerate(groups):
                    lg = g.require_group(name)
                    for j, b in enumerate(layer.blobs):
                        if gi == 0 and (i, j) not in owned:
                            continue
                        arr = b.host_data() if gi == 0 else b.host_diff()
                        lg.create_dataset(str(j), data=backend.to_host(arr))

    def load_hdf5(self, path: str) -> None:
        import h5py  # noqa: PLC0415

        try:
            f = h5py.File(path, "r")
        except OSError as exc:
            raise WeightsError(f"{path}: cannot open HDF5 weights ({exc})") from exc
        with f:
            if "data" not in f:
                raise WeightsError(f"{path}: HDF5 weights file has no /data group")
            data = f["data"]
            for lname in data:
                idx = self._layer_by_name.get(lname)
                if idx is None:
                    logger.info(f"Ignoring source layer {lname}")
                    continue
                layer = self.layers_list[idx]
                g = data[lname]
                if len(g) > len(layer.blobs):
                    raise WeightsError(
                        f"{path}: incompatible number of blobs for layer '{lname}': "
                        f"file has {len(g)}, net expects {len(layer.blobs)}"
                    )
                for j, blob in enumerate(layer.blobs):
                    key = str(j)
                    if key not in g:
                        pid = self.param_id_of[(idx, j)]
                        if self.param_owners[pid] >= 0:
                            continue
                        raise WeightsError(
                            f"{path}: layer '{lname}' param {j} missing in the file"
                        )
                    arr = np.asarray(g[key])
                    if arr.shape != tuple(blob.shape):
                        raise WeightsError(
                            f"{path}: cannot copy param {j} weights from layer "
                            f"'{lname}'; shape mismatch. Source param shape is "
                            f"{arr.shape}; target param shape is {tuple(blob.shape)}"
                        )
                    backend.copy_into(blob.data, arr.astype(blob.dtype))

    def share_with(self, other) -> None:
        """Alias this net's params' data to ``other``'s, by layer name."""
        for i, layer in enumerate(other.layers_list):
            name = other.layer_names[i]
            idx = self._layer_by_name.get(name)
            if idx is None:
                continue
            mine = self.layers_list[idx]
            if len(mine.blobs) != len(layer.blobs):
                raise WeightsError(
                    f"share_with: layer '{name}' has {len(mine.blobs)} blobs here and "
                    f"{len(layer.blobs)} in the source net"
                )
            for j, (a, b) in enumerate(zip(mine.blobs, layer.blobs, strict=True)):
                if a.shape != b.shape:
                    raise WeightsError(
                        f"share_with: layer '{name}' param {j} shape {a.shape} != "
                        f"source {b.shape}"
                    )
                a.share_data(b)

    # pycaffe spelling
    ShareTrainedLayersWith = share_with
