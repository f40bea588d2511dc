"""Export a :class:`recaffe.Net` to an ONNX model.

The graph keeps the net's blob names: every ``Input`` top is a graph input (of
its blob's shape), and every blob that no exported layer reads is a graph
output. A blob written in place several times (``conv1`` -> ReLU) has one
tensor per write; the last write carries the blob's name. Parameters are
stored once per owner, so layers (and the steps of an unrolled net) that share
a parameter by name share one initializer.

What is left out: ``Silence`` layers, and loss/accuracy layers whose tops no
other layer reads (the end of a train net); the inputs only they read (the
labels) are dropped. Everything else needs a converter
(:mod:`recaffe.onnx.converters`) or is an error naming the layer.
"""

from __future__ import annotations

import os

from recaffe.io.atomic import atomic_write
from recaffe.onnx.graph import Graph, LayerView, OnnxExportError, require_onnx
from recaffe.onnx.registry import load_converters

#: The default opset (ONNX 1.13+, ONNX Runtime 1.14+); converters use opset-18
#: forms (axes as inputs of the Reduce ops).
DEFAULT_OPSET = 18
MIN_OPSET = 18

_DATA_LAYERS = {"Data", "ImageData", "HDF5Data", "MemoryData", "WindowData"}
#: Layers only meaningful at the end of a train/test net (dropped there).
_END_ONLY = {"Accuracy"}
_SKIPPED = {"Silence"}


def _is_end_only(layer) -> bool:
    return bool(getattr(layer, "is_loss", False)) or layer.type in _END_ONLY


def _plan_layers(net, converters) -> tuple[list[int], set[int]]:
    """Indices of the layers to convert, and of the dropped end-of-net ones."""
    convert, dropped = [], set()
    for i, layer in enumerate(net.layers_list):
        t, name = layer.type, net.layer_names[i]
        if t in _SKIPPED:
            dropped.add(i)
        elif t == "Input":
            continue
        elif _is_end_only(layer):
            dropped.add(i)
        elif t in converters:
            convert.append(i)
        elif t in _DATA_LAYERS:
            raise OnnxExportError(
                f"{t} layer '{name}': data layers cannot be exported; export a "
                "deploy net whose inputs are Input layers")
        elif t == "Python":
            raise OnnxExportError(
                f"Python layer '{name}': a Python layer runs arbitrary code and "
                "has no ONNX equivalent")
        else:
            raise OnnxExportError(
                f"{t} layer '{name}': layer type {t} has no ONNX converter")
    # A dropped loss must not feed a converted layer.
    for i in dropped:
        tops = {net.blob_names[b] for b in net.top_ids[i]}
        for j in convert:
            if j > i and tops & {net.blob_names[b] for b in net.bottom_ids[j]}:
                layer = net.layers_list[i]
                raise OnnxExportError(
                    f"{layer.type} layer '{net.layer_names[i]}': only losses at the "
                    f"end of a net are left out of an export, but layer "
                    f"'{net.layer_names[j]}' reads its top")
    return convert, dropped


def _value_info(onnx, name: str, shape, batch_axis):
    dims = [("N" if batch_axis is not None and a == batch_axis else int(d))
            for a, d in enumerate(shape)]
    return onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, dims)


def build_model(net, *, opset: int = DEFAULT_OPSET, dynamic_batch: bool = False,
                batch_axis: int = 0, carry_state: bool = False,
                extra_outputs: tuple[str, ...] | list[str] = ()):
    """The ONNX ``ModelProto`` of ``net`` (see :func:`export`)."""
    onnx = require_onnx()
    if opset < MIN_OPSET or opset > onnx.defs.onnx_opset_version():
        raise OnnxExportError(
            f"opset {opset} is not supported: choose {MIN_OPSET} to "
            f"{onnx.defs.onnx_opset_version()} (the installed onnx's newest)")
    converters = load_converters()
    convert, dropped = _plan_layers(net, converters)
    g = Graph(net, batch_axis if dynamic_batch else None, carry_state)
    names = net.blob_names
    shape_of = {n: tuple(net.blob_list[i].shape) for i, n in enumerate(names)}

    # Graph inputs: the Input tops, by their blob names.
    inputs: list[str] = []
    current: dict[str, str] = {}
    for i in net.input_blob_ids:
        n = names[i]
        inputs.append(g.reserve(n))
        current[n] = n
    # The last write of each blob gets the blob's name: reserve those first.
    last_write: dict[str, tuple[int, int]] = {}
    for i in convert:
        for j, b in enumerate(net.top_ids[i]):
            last_write[names[b]] = (i, j)
    for n in last_write:
        if n not in current:
            g.reserve(n)

    views: list[LayerView] = []
    for i in convert:
        layer = net.layers_list[i]
        lname = net.layer_names[i]
        bnames = [names[b] for b in net.bottom_ids[i]]
        for n in bnames:
            if n not in current:
                raise OnnxExportError(
                    f"{layer.type} layer '{lname}': bottom '{n}' comes from a layer "
                    "that is not exported")
        tops = []
        for j, b in enumerate(net.top_ids[i]):
            n = names[b]
            final = last_write[n] == (i, j) and n not in inputs
            tops.append(n if final else g.reserve(f"{n}/{lname}"))
        view = LayerView(i, layer, [current[n] for n in bnames], tops,
                         [shape_of[n] for n in bnames],
                         [shape_of[names[b]] for b in net.top_ids[i]])
        converters[layer.type](g, view)
        for j, b in enumerate(net.top_ids[i]):
            current[names[b]] = tops[j]
        views.append(view)

    # Outputs: blobs written by converted layers that no converted layer reads
    # (a Split's tops stand for its bottom).
    split_src: dict[str, str] = {}
    for i in convert:
        if net.layers_list[i].type == "Split":
            src = names[net.bottom_ids[i][0]]
            for b in net.top_ids[i]:
                split_src[names[b]] = split_src.get(src, src)
    # The last layer reading each blob (an in-place layer reads before it
    # writes, so it does not count against its own top).
    last_read: dict[str, int] = {}
    for i in sorted([*convert, *dropped]):
        layer = net.layers_list[i]
        if layer.type == "Split" or (i in dropped and layer.type not in _SKIPPED):
            continue  # a Silence'd blob is no output; a dropped loss's input is
        for b in net.bottom_ids[i]:
            n = names[b]
            last_read[split_src.get(n, n)] = i
    outputs = []
    for n, (i, _) in last_write.items():
        if n in split_src or last_read.get(n, -1) > i:
            continue
        outputs.append(n)
    for n in extra_outputs:
        if n not in current or n in split_src:
            raise OnnxExportError(f"net '{net.name}': cannot output blob '{n}': no "
                                  "exported layer writes it")
        if n not in outputs:
            outputs.append(n)
    if not outputs:
        raise OnnxExportError(f"net '{net.name}': nothing to export (no layer "
                              "output is left once losses are dropped)")
    for n in outputs:
        if current[n] != n:  # an Input rewritten in place
            raise OnnxExportError(
                f"net '{net.name}': output blob '{n}' is an input rewritten in "
                "place; give the layer a new top name")

    extra = [n for v in views for n, _ in v.extra_outputs]
    nodes = _live_nodes(g.nodes, [*outputs, *extra])
    used = {x for node in nodes for x in node.input}
    initializers = [t for t in g.initializers if t.name in used]
    ba = g.batch_axis
    graph_inputs = [_value_info(onnx, n, shape_of[n], ba) for n in inputs if n in used]
    graph_outputs = [_value_info(onnx, n, shape_of[n], ba) for n in outputs]
    for view in views:
        graph_inputs += [_value_info(onnx, n, s, ba) for n, s in view.extra_inputs]
        graph_outputs += [_value_info(onnx, n, s, ba) for n, s in view.extra_outputs]
    graph = onnx.helper.make_graph(nodes, net.name or "recaffe_net", graph_inputs,
                                   graph_outputs, initializer=initializers)
    model = onnx.helper.make_model(
        graph, opset_imports=[onnx.helper.make_opsetid("", opset)],
        producer_name="recaffe", producer_version=_version())
    # The oldest IR version that carries this opset, for older runtimes.
    model.ir_version = onnx.helper.find_min_ir_version_for(model.opset_import)
    dropped_names = sorted(net.layer_names[i] for i in dropped)
    if dropped_names:
        model.doc_string = "left out (end of net): " + ", ".join(dropped_names)
    onnx.checker.check_model(model)
    return model


def _live_nodes(nodes: list, outputs: list[str]) -> list:
    """The nodes that the outputs depend on (e.g. not a Split feeding only a
    dropped loss), in order."""
    needed = set(outputs)
    keep = []
    for node in reversed(nodes):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(node.input)
    return keep[::-1]


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("recaffe")
    except Exception:  # noqa: BLE001 - metadata is optional (source checkout)
        return "0"


def export(net, path: str | os.PathLike | None = None, *,
           opset: int = DEFAULT_OPSET, dynamic_batch: bool = False,
           batch_axis: int = 0, carry_state: bool = False,
           extra_outputs: tuple[str, ...] | list[str] = ()):
    """Export ``net`` to ONNX; returns the ``onnx.ModelProto``.

    Args:
        net: a built :class:`recaffe.Net` (its weights are exported as they are).
        path: where to write the model (atomically); None: only return it.
        opset: the ONNX opset (18 or newer).
        dynamic_batch: make ``batch_axis`` of every input and output symbolic
            (``"N"``); otherwise shapes are the net's.
        batch_axis: the batch axis (1 for time-major recurrent nets, T x N).
        carry_state: give RNN/LSTM layers without ``expose_hidden`` their
            initial states as extra inputs ``<layer>_h_0`` (``_c_0``) and final
            states as extra outputs ``<layer>_h_T`` (``_c_T``); otherwise the
            graph starts from zero states, as a freshly built net does.
        extra_outputs: blobs to output as well although layers read them
            (e.g. the final states of an unrolled net).
    """
    model = build_model(net, opset=opset, dynamic_batch=dynamic_batch,
                        batch_axis=batch_axis, carry_state=carry_state,
                        extra_outputs=extra_outputs)
    if path is not None:
        atomic_write(os.fspath(path), model.SerializeToString())
    return model
