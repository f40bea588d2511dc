"""Upgrades of legacy net and solver definitions to the current format.

:func:`upgrade_net_param` applies, in Caffe's order and only where needed:

1. V0 -> V1: ``layers { layer { type: "conv" ... } }`` (nested V0 definitions,
   including separate ``padding`` layers) become V1 layers (best effort).
2. Legacy data-transformation fields (``scale``, ``mean_file``,
   ``crop_size``, ``mirror``) of V1 Data / ImageData / WindowData layers move
   into ``transform_param``.
3. V1 -> current: ``layers { type: CONVOLUTION blobs_lr: 1 ... }`` become
   ``layer { type: "Convolution" param { lr_mult: 1 } ... }``.
4. Deprecated net inputs (``input`` with ``input_shape`` or ``input_dim``)
   become a first layer ``{name: "input" type: "Input"}``.
5. BatchNorm layers listing exactly three ``param`` entries get
   ``lr_mult: 0`` and ``decay_mult: 0`` on each (its statistics are not
   learned by gradient).

:func:`upgrade_solver_param` converts the ``solver_type`` enum into the
``type`` string and fills in ``snapshot_prefix`` from the solver file name.

Both work in place and return True when they changed anything.
"""

from __future__ import annotations

import logging
import os

from recaffe.errors import PrototxtError
from recaffe.proto import caffe_pb2

__all__ = [
    "SOLVER_TYPE_NAMES",
    "V1_LAYER_TYPE_NAMES",
    "net_needs_upgrade",
    "upgrade_net_param",
    "upgrade_solver_param",
]

logger = logging.getLogger("recaffe.io.upgrade")

_V1 = caffe_pb2.V1LayerParameter

# V1LayerParameter.LayerType -> current layer type string.
V1_LAYER_TYPE_NAMES: dict[int, str] = {
    _V1.NONE: "",
    _V1.ABSVAL: "AbsVal",
    _V1.ACCURACY: "Accuracy",
    _V1.ARGMAX: "ArgMax",
    _V1.BNLL: "BNLL",
    _V1.CONCAT: "Concat",
    _V1.CONTRASTIVE_LOSS: "ContrastiveLoss",
    _V1.CONVOLUTION: "Convolution",
    _V1.DECONVOLUTION: "Deconvolution",
    _V1.DATA: "Data",
    _V1.DROPOUT: "Dropout",
    _V1.DUMMY_DATA: "DummyData",
    _V1.EUCLIDEAN_LOSS: "EuclideanLoss",
    _V1.ELTWISE: "Eltwise",
    _V1.EXP: "Exp",
    _V1.FLATTEN: "Flatten",
    _V1.HDF5_DATA: "HDF5Data",
    _V1.HDF5_OUTPUT: "HDF5Output",
    _V1.HINGE_LOSS: "HingeLoss",
    _V1.IM2COL: "Im2col",
    _V1.IMAGE_DATA: "ImageData",
    _V1.INFOGAIN_LOSS: "InfogainLoss",
    _V1.INNER_PRODUCT: "InnerProduct",
    _V1.LRN: "LRN",
    _V1.MEMORY_DATA: "MemoryData",
    _V1.MULTINOMIAL_LOGISTIC_LOSS: "MultinomialLogisticLoss",
    _V1.MVN: "MVN",
    _V1.POOLING: "Pooling",
    _V1.POWER: "Power",
    _V1.RELU: "ReLU",
    _V1.SIGMOID: "Sigmoid",
    _V1.SIGMOID_CROSS_ENTROPY_LOSS: "SigmoidCrossEntropyLoss",
    _V1.SILENCE: "Silence",
    _V1.SOFTMAX: "Softmax",
    _V1.SOFTMAX_LOSS: "SoftmaxWithLoss",
    _V1.SPLIT: "Split",
    _V1.SLICE: "Slice",
    _V1.TANH: "TanH",
    _V1.WINDOW_DATA: "WindowData",
    _V1.THRESHOLD: "Threshold",
}

# V0 lower-case type string -> V1 LayerType.
_V0_LAYER_TYPES: dict[str, int] = {
    "accuracy": _V1.ACCURACY,
    "bnll": _V1.BNLL,
    "concat": _V1.CONCAT,
    "conv": _V1.CONVOLUTION,
    "data": _V1.DATA,
    "dropout": _V1.DROPOUT,
    "euclidean_loss": _V1.EUCLIDEAN_LOSS,
    "flatten": _V1.FLATTEN,
    "hdf5_data": _V1.HDF5_DATA,
    "hdf5_output": _V1.HDF5_OUTPUT,
    "im2col": _V1.IM2COL,
    "images": _V1.IMAGE_DATA,
    "infogain_loss": _V1.INFOGAIN_LOSS,
    "innerproduct": _V1.INNER_PRODUCT,
    "lrn": _V1.LRN,
    "multinomial_logistic_loss": _V1.MULTINOMIAL_LOGISTIC_LOSS,
    "pool": _V1.POOLING,
    "relu": _V1.RELU,
    "sigmoid": _V1.SIGMOID,
    "softmax": _V1.SOFTMAX,
    "softmax_loss": _V1.SOFTMAX_LOSS,
    "split": _V1.SPLIT,
    "tanh": _V1.TANH,
    "window_data": _V1.WINDOW_DATA,
}

_SP = caffe_pb2.SolverParameter
SOLVER_TYPE_NAMES: dict[int, str] = {
    _SP.SGD: "SGD",
    _SP.NESTEROV: "Nesterov",
    _SP.ADAGRAD: "AdaGrad",
    _SP.RMSPROP: "RMSProp",
    _SP.ADADELTA: "AdaDelta",
    _SP.ADAM: "Adam",
}

# *_param fields of V1LayerParameter; each has the same name in LayerParameter.
_V1_PARAM_FIELDS = tuple(
    f.name for f in _V1.DESCRIPTOR.fields if f.name.endswith("_param")
)


def _net_label(net_param) -> str:
    return f"net '{net_param.name}'" if net_param.name else "net"


# ---------------------------------------------------------------------------
# V0 -> V1
# ---------------------------------------------------------------------------


def _net_needs_v0_upgrade(net_param) -> bool:
    return any(layer.HasField("layer") for layer in net_param.layers)


def _fold_v0_padding_layers(net_param) -> None:
    """Remove V0 ``padding`` layers, moving their pad into the consumer."""
    old_layers = list(net_param.layers)
    last_producer: dict[str, int] = dict.fromkeys(net_param.input, -1)
    kept = []
    for i, conn in enumerate(old_layers):
        v0 = conn.layer
        if v0.type != "padding":
            kept.append(_copy(conn))
        for j, blob_name in enumerate(conn.bottom):
            # Unknown bottoms are left for net construction to report.
            src_idx = last_producer.get(blob_name, -1)
            if src_idx < 0:
                continue
            source = old_layers[src_idx]
            if source.layer.type == "padding":
                if v0.type not in ("conv", "pool"):
                    raise PrototxtError(
                        f"V0 net upgrade: padding layer feeds layer '{v0.name}' "
                        f"of type '{v0.type}'; only conv and pool layers can "
                        "absorb padding"
                    )
                if (len(conn.bottom) != 1 or len(source.bottom) != 1
                        or len(source.top) != 1):
                    raise PrototxtError(
                        "V0 net upgrade: padding layers and their consumers must have "
                        "exactly one input and one output"
                    )
                target = kept[-1]
                target.layer.pad = source.layer.pad
                target.bottom[j] = source.bottom[0]
        for blob_name in conn.top:
            last_producer[blob_name] = i
    del net_param.layers[:]
    net_param.layers.extend(kept)


def _copy(msg):
    new = type(msg)()
    new.CopyFrom(msg)
    return new


def _upgrade_v0_layer(conn, out) -> bool:
    """Fill V1 layer ``out`` from V0 connection ``conn``; False if lossy."""
    ok = True
    out.Clear()
    out.bottom.extend(conn.bottom)
    out.top.extend(conn.top)
    if not conn.HasField("layer"):
        return ok
    v0 = conn.layer
    t = v0.type
    label = f"V0 layer '{v0.name}' (type '{t}')"

    def unsupported(field: str) -> None:
        nonlocal ok
        ok = False
        logger.error("%s: field '%s' is not supported for this type; dropped",
                     label, field)

    if v0.HasField("name"):
        out.name = v0.name
    if v0.HasField("type"):
        if t in _V0_LAYER_TYPES:
            out.type = _V0_LAYER_TYPES[t]
        else:
            ok = False
            logger.error("%s: unknown V0 layer type", label)
            out.type = _V1.NONE
    out.blobs.extend(v0.blobs)
    out.blobs_lr.extend(v0.blobs_lr)
    out.weight_decay.extend(v0.weight_decay)

    conv_like = {"conv": "convolution_param", "innerproduct": "inner_product_param"}
    if v0.HasField("num_output"):
        if t in conv_like:
            getattr(out, conv_like[t]).num_output = v0.num_output
        else:
            unsupported("num_output")
    if v0.HasField("biasterm"):
        if t in conv_like:
            getattr(out, conv_like[t]).bias_term = v0.biasterm
        else:
            unsupported("biasterm")
    for filler in ("weight_filler", "bias_filler"):
        if v0.HasField(filler):
            if t in conv_like:
                target = getattr(out, conv_like[t])
                getattr(target, filler).CopyFrom(getattr(v0, filler))
            else:
                unsupported(filler)
    for v0_name, conv_name, pool_name in (
        ("pad", "pad", "pad"),
        ("kernelsize", "kernel_size", "kernel_size"),
        ("stride", "stride", "stride"),
    ):
        if v0.HasField(v0_name):
            value = getattr(v0, v0_name)
            if t == "conv":
                getattr(out.convolution_param, conv_name).append(value)
            elif t == "pool":
                setattr(out.pooling_param, pool_name, value)
            else:
                unsupported(v0_name)
    if v0.HasField("group"):
        if t == "conv":
            out.convolution_param.group = v0.group
        else:
            unsupported("group")
    if v0.HasField("pool"):
        if t == "pool":
            out.pooling_param.pool = int(v0.pool)  # same numbering
        else:
            unsupported("pool")
    if v0.HasField("dropout_ratio"):
        if t == "dropout":
            out.dropout_param.dropout_ratio = v0.dropout_ratio
        else:
            unsupported("dropout_ratio")
    for name in ("local_size", "alpha", "beta", "k"):
        if v0.HasField(name):
            if t == "lrn":
                setattr(out.lrn_param, name, getattr(v0, name))
            else:
                unsupported(name)

    source_params = {
        "data": "data_param",
        "hdf5_data": "hdf5_data_param",
        "images": "image_data_param",
        "window_data": "window_data_param",
        "infogain_loss": "infogain_loss_param",
    }
    if v0.HasField("source"):
        if t in source_params:
            getattr(out, source_params[t]).source = v0.source
        else:
            unsupported("source")
    transform_types = ("data", "images", "window_data")
    for v0_name, tp_name in (
        ("scale", "scale"),
        ("meanfile", "mean_file"),
        ("cropsize", "crop_size"),
        ("mirror", "mirror"),
    ):
        if v0.HasField(v0_name):
            if t in transform_types:
                setattr(out.transform_param, tp_name, getattr(v0, v0_name))
            else:
                unsupported(v0_name)
    if v0.HasField("batchsize"):
        if t in ("data", "hdf5_data", "images", "window_data"):
            getattr(out, source_params[t]).batch_size = v0.batchsize
        else:
            unsupported("batchsize")
    if v0.HasField("rand_skip"):
        if t in ("data", "images"):
            getattr(out, source_params[t]).rand_skip = v0.rand_skip
        else:
            unsupported("rand_skip")
    if v0.HasField("shuffle_images"):
        if t == "images":
            out.image_data_param.shuffle = v0.shuffle_images
        else:
            unsupported("shuffle_images")
    for name in ("new_height", "new_width"):
        if v0.HasField(name):
            if t == "images":
                setattr(out.image_data_param, name, getattr(v0, name))
            else:
                unsupported(name)
    for name in ("new_num", "new_channels"):
        if v0.HasField(name):
            unsupported(name)
    if v0.HasField("concat_dim"):
        if t == "concat":
            out.concat_param.concat_dim = v0.concat_dim
        else:
            unsupported("concat_dim")
    for v0_name, wd_name in (
        ("det_fg_threshold", "fg_threshold"),
        ("det_bg_threshold", "bg_threshold"),
        ("det_fg_fraction", "fg_fraction"),
        ("det_context_pad", "context_pad"),
        ("det_crop_mode", "crop_mode"),
    ):
        if v0.HasField(v0_name):
            if t == "window_data":
                setattr(out.window_data_param, wd_name, getattr(v0, v0_name))
            else:
                unsupported(v0_name)
    if v0.HasField("hdf5_output_param"):
        if t == "hdf5_output":
            out.hdf5_output_param.CopyFrom(v0.hdf5_output_param)
        else:
            unsupported("hdf5_output_param")
    return ok


def _upgrade_v0_net(net_param) -> None:
    logger.info("Attempting to upgrade V0 (nested 'layers { layer { ... } }') %s",
                _net_label(net_param))
    _fold_v0_padding_layers(net_param)
    old_layers = [_copy(conn) for conn in net_param.layers]
    del net_param.layers[:]
    ok = True
    for conn in old_layers:
        ok &= _upgrade_v0_layer(conn, net_param.layers.add())
    if not ok:
        logger.error("V0 %s was upgraded with losses (see errors above)",
                     _net_label(net_param))


# ---------------------------------------------------------------------------
# Legacy data-transformation fields
# ---------------------------------------------------------------------------

_TRANSFORM_LEGACY = {
    _V1.DATA: "data_param",
    _V1.IMAGE_DATA: "image_data_param",
    _V1.WINDOW_DATA: "window_data_param",
}
_TRANSFORM_FIELDS = ("scale", "mean_file", "crop_size", "mirror")


def _net_needs_data_upgrade(net_param) -> bool:
    for layer in net_param.layers:
        param_name = _TRANSFORM_LEGACY.get(layer.type)
        if param_name is None or not layer.HasField(param_name):
            continue
        param = getattr(layer, param_name)
        if any(param.HasField(f) for f in _TRANSFORM_FIELDS):
            return True
    return False


def _upgrade_data_transformation(net_param) -> None:
    for layer in net_param.layers:
        param_name = _TRANSFORM_LEGACY.get(layer.type)
        if param_name is None or not layer.HasField(param_name):
            continue
        param = getattr(layer, param_name)
        for field in _TRANSFORM_FIELDS:
            if param.HasField(field):
                setattr(layer.transform_param, field, getattr(param, field))
                param.ClearField(field)


# ---------------------------------------------------------------------------
# V1 -> current
# ---------------------------------------------------------------------------


def _upgrade_v1_layer(v1, layer) -> bool:
    ok = True
    layer.Clear()
    layer.bottom.extend(v1.bottom)
    layer.top.extend(v1.top)
    if v1.HasField("name"):
        layer.name = v1.name
    layer.include.extend(v1.include)
    layer.exclude.extend(v1.exclude)
    if v1.HasField("type"):
        layer.type = V1_LAYER_TYPE_NAMES.get(v1.type, "")
    layer.blobs.extend(v1.blobs)

    def spec(i: int):
        while len(layer.param) <= i:
            layer.param.add()
        return layer.param[i]

    for i, name in enumerate(v1.param):
        spec(i).name = name
    for i, mode in enumerate(v1.blob_share_mode):
        # V1 and ParamSpec DimCheckMode share numbering (STRICT=0, PERMISSIVE=1).
        spec(i).share_mode = int(mode)
    for i, lr in enumerate(v1.blobs_lr):
        spec(i).lr_mult = lr
    for i, decay in enumerate(v1.weight_decay):
        spec(i).decay_mult = decay
    layer.loss_weight.extend(v1.loss_weight)
    for field in _V1_PARAM_FIELDS:
        if v1.HasField(field):
            getattr(layer, field).CopyFrom(getattr(v1, field))
    if v1.HasField("layer"):
        ok = False
        logger.error("V1 layer '%s' still holds a nested V0 'layer'; ignored", v1.name)
    return ok


def _upgrade_v1_net(net_param) -> None:
    if len(net_param.layer):
        raise PrototxtError(
            f"{_net_label(net_param)}: refusing to upgrade a definition that has both "
            "'layer' and 'layers' fields; the current format is "
            "layer { type: \"Name\" ... }, the deprecated V1 format is "
            "layers { type: NAME ... }. Convert the file to 'layer' entries only."
        )
    logger.info("Attempting to upgrade V1 ('layers { type: ENUM }') %s",
                _net_label(net_param))
    old_layers = list(net_param.layers)
    ok = True
    for i, v1 in enumerate(old_layers):
        if not _upgrade_v1_layer(v1, net_param.layer.add()):
            ok = False
            logger.error("Upgrade of V1 layer %d ('%s') was incomplete", i, v1.name)
    net_param.ClearField("layers")
    if not ok:
        logger.error("V1 %s was upgraded with losses (see errors above)",
                     _net_label(net_param))


# ---------------------------------------------------------------------------
# Deprecated inputs -> Input layer
# ---------------------------------------------------------------------------


def _upgrade_net_input(net_param) -> None:
    inputs = list(net_param.input)
    shapes = list(net_param.input_shape)
    dims = list(net_param.input_dim)
    if shapes or dims:
        if shapes and len(shapes) != len(inputs):
            raise PrototxtError(
                f"{_net_label(net_param)}: {len(inputs)} 'input' entries but "
                f"{len(shapes)} 'input_shape' entries (need one per input)"
            )
        if not shapes and len(dims) != 4 * len(inputs):
            raise PrototxtError(
                f"{_net_label(net_param)}: {len(inputs)} 'input' entries need "
                f"{4 * len(inputs)} 'input_dim' values (4 per input), got {len(dims)}"
            )
        layer = caffe_pb2.LayerParameter(name="input", type="Input")
        for i, name in enumerate(inputs):
            layer.top.append(name)
            if shapes:
                layer.input_param.shape.add().CopyFrom(shapes[i])
            else:
                layer.input_param.shape.add().dim.extend(dims[4 * i: 4 * i + 4])
        old = list(net_param.layer)
        del net_param.layer[:]
        net_param.layer.append(layer)
        net_param.layer.extend(old)
    net_param.ClearField("input")
    net_param.ClearField("input_shape")
    net_param.ClearField("input_dim")


# ---------------------------------------------------------------------------
# BatchNorm params
# ---------------------------------------------------------------------------


def _net_needs_batchnorm_upgrade(net_param) -> bool:
    return any(
        layer.type == "BatchNorm" and len(layer.param) == 3 for layer in net_param.layer
    )


def _upgrade_batchnorm(net_param) -> None:
    for layer in net_param.layer:
        if layer.type == "BatchNorm" and len(layer.param) == 3:
            for spec in layer.param:
                spec.lr_mult = 0.0
                spec.decay_mult = 0.0


# ---------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------


def net_needs_upgrade(net_param: caffe_pb2.NetParameter) -> bool:
    """True when :func:`upgrade_net_param` would change ``net_param``."""
    return (
        _net_needs_v0_upgrade(net_param)
        or _net_needs_data_upgrade(net_param)
        or len(net_param.layers) > 0
        or len(net_param.input) > 0
        or len(net_param.input_shape) > 0
        or len(net_param.input_dim) > 0
        or _net_needs_batchnorm_upgrade(net_param)
    )


def upgrade_net_param(net_param: caffe_pb2.NetParameter) -> bool:
    """Upgrade a (text or binary) ``NetParameter`` in place; True if changed.

    Raises :class:`~recaffe.errors.PrototxtError` for definitions that cannot
    be upgraded (both ``layer`` and ``layers``; inconsistent inputs).
    """
    changed = False
    if _net_needs_v0_upgrade(net_param):
        _upgrade_v0_net(net_param)
        changed = True
    if _net_needs_data_upgrade(net_param):
        logger.info("Moving legacy data-transformation fields into transform_param "
                    "in %s", _net_label(net_param))
        _upgrade_data_transformation(net_param)
        changed = True
    if len(net_param.layers):
        _upgrade_v1_net(net_param)
        changed = True
    if len(net_param.input) or len(net_param.input_shape) or len(net_param.input_dim):
        logger.info("Converting deprecated 'input' fields of %s into an Input layer",
                    _net_label(net_param))
        _upgrade_net_input(net_param)
        changed = True
    if _net_needs_batchnorm_upgrade(net_param):
        logger.info("Setting lr_mult/decay_mult to 0 on the 3 params of BatchNorm "
                    "layers in %s", _net_label(net_param))
        _upgrade_batchnorm(net_param)
        changed = True
    return changed


def upgrade_solver_param(
    solver_param: caffe_pb2.SolverParameter,
    solver_path: str | os.PathLike[str] | None = None,
) -> bool:
    """Upgrade a ``SolverParameter`` in place; True if changed.

    * ``solver_type: ADAM`` (deprecated enum) becomes ``type: "Adam"``.  Giving
      both ``solver_type`` and a ``type`` that names a different solver raises
      :class:`~recaffe.errors.PrototxtError`.
    * With ``solver_path``: an absent ``snapshot_prefix`` becomes the solver
      path without its extension; a ``snapshot_prefix`` naming an existing
      directory becomes ``<dir>/<solver file stem>``.
    """
    changed = False
    where = os.fspath(solver_path) if solver_path is not None else "solver"
    if solver_param.HasField("solver_type"):
        new_type = SOLVER_TYPE_NAMES.get(solver_param.solver_type)
        if new_type is None:  # pragma: no cover - enum is closed
            raise PrototxtError(
                f"{where}: unknown solver_type {solver_param.solver_type}")
        if solver_param.HasField("type") and solver_param.type != new_type:
            raise PrototxtError(
                f"{where}: both the deprecated 'solver_type' "
                f"({_SP.SolverType.Name(solver_param.solver_type)}) and 'type' "
                f"(\"{solver_param.type}\") are given; keep only 'type'"
            )
        solver_param.type = new_type
        solver_param.ClearField("solver_type")
        changed = True
    if solver_path is not None:
        path = os.fspath(solver_path)
        if not solver_param.HasField("snapshot_prefix"):
            solver_param.snapshot_prefix = os.path.splitext(path)[0]
            logger.info("snapshot_prefix was not specified and is set to %s",
                        solver_param.snapshot_prefix)
            changed = True
        elif os.path.isdir(solver_param.snapshot_prefix):
            stem = os.path.splitext(os.path.basename(path))[0]
            solver_param.snapshot_prefix = os.path.join(
                solver_param.snapshot_prefix, stem)
            logger.info("snapshot_prefix is a directory and is replaced to %s",
                        solver_param.snapshot_prefix)
            changed = True
    return changed
