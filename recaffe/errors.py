"""Typed errors raised by recaffe.

Every error names the thing that is wrong (file and line, layer type and name,
blob name and index) and, where it can, what was expected against what was
found. Library callers catch :class:`RecaffeError`; the command line prints the
message on one line and exits with status 1.
"""

from __future__ import annotations


class RecaffeError(RuntimeError):
    """Base class of every error recaffe raises on bad input or bad state.

    A RuntimeError, as pycaffe raises for the same conditions.
    """


class PrototxtError(RecaffeError):
    """A text protobuf file (net or solver) could not be read or parsed."""


class WeightsError(RecaffeError):
    """A weights file (.caffemodel, .caffemodel.h5) is unreadable or does not fit."""


class NetError(RecaffeError):
    """The net definition is inconsistent (bottoms, tops, sharing, rules)."""


class UnknownLayerTypeError(NetError):
    """A layer's `type` is not registered."""


class LayerSetupError(NetError):
    """A layer's parameters or bottom shapes are invalid."""


class ShapeError(LayerSetupError):
    """Bottom shapes do not fit the layer (checked in setup/reshape)."""


class BlobMemoryError(NetError):
    """A blob's memory could not be allocated (the message gives shape and bytes).

    ``blob`` is the Blob whose allocation failed, so that the net can name the
    layer and blob it belongs to.
    """

    def __init__(self, message: str, blob=None):
        super().__init__(message)
        self.blob = blob


class DataError(RecaffeError):
    """Input data is missing or malformed (HDF5 files, LMDB, labels, indices)."""


class SolverError(RecaffeError):
    """The solver definition or a solver state file is invalid."""


class DivergenceError(SolverError):
    """Training produced a non-finite loss or gradient."""


class BackendError(RecaffeError):
    """A requested compute backend (GPU, BLAS library) is not available."""


class DistributedError(RecaffeError):
    """Data-parallel training across ranks failed: a rank stopped or timed out,
    ranks disagree on the net or solver, or MPI/NCCL is not usable."""


class StaleHostWriteError(RecaffeError):
    """A host array kept across a device pass was written (the write would be
    lost); raised only with ``RECAFFE_SYNC_CHECK=1``."""


def layer_error(
    layer, message: str, cls: type[RecaffeError] = LayerSetupError
) -> RecaffeError:
    """Build an error prefixed with the layer's type and name."""
    name = getattr(layer, "name", "") or "(unnamed)"
    ltype = getattr(layer, "type", None) or type(layer).__name__
    return cls(f"{ltype} layer '{name}': {message}")
