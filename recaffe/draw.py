"""Draw a net as a graph (pycaffe's ``caffe.draw``), in Caffe's style.

Layers are boxes (records) coloured by type, blobs are grey octagons, edges run
bottom blob -> layer -> top blob; in-place neuron layers are green. The DOT
text is produced here without dependencies (:func:`get_dot_source`); PNG, SVG
and the other image formats are rendered by Graphviz's ``dot`` program
(through pydot when installed).

Unrolled recurrent nets read step by step: when layers share parameters by
name, layers whose names carry a step suffix (``<name>_t<k>``, or
``<name><k>`` when the same stem occurs with several step numbers) are drawn
inside one cluster per step, with the blobs they produce.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import OrderedDict

from recaffe.errors import NetError, RecaffeError
from recaffe.proto import caffe_pb2

LAYER_STYLE_DEFAULT = {"shape": "record", "fillcolor": "#6495ED", "style": "filled"}
NEURON_LAYER_STYLE = {"shape": "record", "fillcolor": "#90EE90", "style": "filled"}
BLOB_STYLE = {"shape": "octagon", "fillcolor": "#E0E0E0", "style": "filled"}
_TYPE_COLORS = {"Convolution": "#FF5050", "Deconvolution": "#FF5050",
                "Pooling": "#FF9900", "InnerProduct": "#CC33FF"}

_T_SUFFIX = re.compile(r"^(?P<stem>.+?)_t(?P<step>\d+)$")
_DIGIT_SUFFIX = re.compile(r"^(?P<stem>.*?\D)(?P<step>\d+)$")


# -- labels ------------------------------------------------------------------------

def get_pooling_types_dict() -> dict[int, str]:
    """Pooling enum value -> name (``{0: 'MAX', 1: 'AVE', 2: 'STOCHASTIC'}``)."""
    enum = caffe_pb2.PoolingParameter.PoolMethod
    return {v.number: v.name for v in enum.DESCRIPTOR.values}


def _first(values, default):
    return values[0] if len(values) else default


def get_edge_label(layer) -> str:
    """The count that labels a layer's out-edges (batch size or num_output)."""
    if layer.type == "Data":
        return str(layer.data_param.batch_size)
    if layer.type in ("Convolution", "Deconvolution"):
        return str(layer.convolution_param.num_output)
    if layer.type == "InnerProduct":
        return str(layer.inner_product_param.num_output)
    return ""


def get_layer_lr_mult(layer) -> str:
    """``lr mult: a, b`` text of a layer's param specs (1 when unset)."""
    if layer.type not in ("Convolution", "Deconvolution", "InnerProduct", "Scale",
                          "Bias", "Embed", "PReLU"):
        return ""
    mults = [p.lr_mult if p.HasField("lr_mult") else 1.0 for p in layer.param]
    if not mults:
        mults = [1.0]
    return "lr mult: " + ", ".join(f"{m:g}" for m in mults)


def get_layer_label(layer, rankdir: str, display_lrm: bool = False) -> str:
    """A layer's node label: name, type and, for conv/pool, the window."""
    sep = " " if rankdir in ("TB", "BT") else "\n"
    if layer.type in ("Convolution", "Deconvolution"):
        p = layer.convolution_param
        kernel = p.kernel_h or _first(p.kernel_size, 1)
        stride = p.stride_h or _first(p.stride, 1)
        pad = p.pad_h or _first(p.pad, 0)
        label = (f"{layer.name}{sep}({layer.type}){sep}kernel size: {kernel}{sep}"
                 f"stride: {stride}{sep}pad: {pad}")
    elif layer.type == "Pooling":
        p = layer.pooling_param
        pool = get_pooling_types_dict().get(p.pool, str(p.pool))
        kernel = p.kernel_h or p.kernel_size
        stride = p.stride_h or p.stride
        pad = p.pad_h or p.pad
        label = (f"{layer.name}{sep}(Pooling {pool}){sep}kernel size: {kernel}{sep}"
                 f"stride: {stride}{sep}pad: {pad}")
    else:
        label = f"{layer.name}{sep}({layer.type})"
    if display_lrm:
        lrm = get_layer_lr_mult(layer)
        if lrm:
            label += sep + lrm
    return label


def choose_color_by_layertype(layertype: str) -> str:
    return _TYPE_COLORS.get(layertype, LAYER_STYLE_DEFAULT["fillcolor"])


# -- phase filtering and step clusters --------------------------------------------

def _rule_matches(rule, phase) -> bool:
    return not rule.HasField("phase") or rule.phase == phase


def layer_included(layer, phase) -> bool:
    """Whether ``layer`` is in the net for ``phase`` (``None``: always).

    Only the phase of include/exclude rules is considered (levels and stages
    are not known when drawing).
    """
    if phase is None:
        return True
    if len(layer.include) and len(layer.exclude):
        raise NetError(f"layer '{layer.name}' ({layer.type}) specifies both include "
                       "and exclude rules; use one or the other")
    if len(layer.include):
        return any(_rule_matches(r, phase) for r in layer.include)
    return not any(_rule_matches(r, phase) for r in layer.exclude)


def _has_shared_params(layers) -> bool:
    owners: dict[str, str] = {}
    for layer in layers:
        for p in layer.param:
            if p.name:
                if p.name in owners and owners[p.name] != layer.name:
                    return True
                owners.setdefault(p.name, layer.name)
    return False


def step_of_layers(layers) -> dict[str, int]:
    """Layer name -> time step, for layers of an unrolled net (else empty).

    ``<name>_t<k>`` always counts; ``<name><k>`` counts when the same stem
    occurs with at least two step numbers. Nets without parameters shared
    between layers are not treated as unrolled.
    """
    layers = list(layers)
    if not _has_shared_params(layers):
        return {}
    steps: dict[str, int] = {}
    digit: dict[str, tuple[str, int]] = {}
    for layer in layers:
        m = _T_SUFFIX.match(layer.name)
        if m:
            steps[layer.name] = int(m.group("step"))
            continue
        m = _DIGIT_SUFFIX.match(layer.name)
        if m:
            digit[layer.name] = (m.group("stem"), int(m.group("step")))
    by_stem: dict[str, set[int]] = {}
    for stem, step in digit.values():
        by_stem.setdefault(stem, set()).add(step)
    for name, (stem, step) in digit.items():
        if len(by_stem[stem]) >= 2:
            steps[name] = step
    return steps


# -- DOT text ------------------------------------------------------------------------

def _quote(text: str) -> str:
    out = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{out}"'


def _record_label(text: str) -> str:
    # Record shapes give {}|<> a meaning; escape them in names.
    quoted = _quote(text)
    for ch in "{}|<>":
        quoted = quoted.replace(ch, "\\" + ch)
    return quoted


def _attrs(attrs: dict) -> str:
    return ", ".join(f"{k}={v if k == 'label' else _quote(str(v))}"
                     for k, v in attrs.items())


def get_dot_source(caffe_net, rankdir: str = "LR", label_edges: bool = True,
                   phase=None, display_lrm: bool = False) -> str:
    """The DOT text of ``caffe_net`` (a ``NetParameter``)."""
    name = caffe_net.name or "Net"
    layers = [lp for lp in caffe_net.layer if layer_included(lp, phase)]
    steps = step_of_layers(layers)
    nodes: OrderedDict[str, tuple[str, dict, int | None]] = OrderedDict()
    edges: list[tuple[str, str, str | None]] = []
    for layer in layers:
        node = f"{layer.name}_{layer.type}"
        label = _record_label(get_layer_label(layer, rankdir, display_lrm))
        step = steps.get(layer.name)
        in_place = (len(layer.bottom) == 1 and len(layer.top) == 1
                    and layer.bottom[0] == layer.top[0])
        style = dict(NEURON_LAYER_STYLE if in_place else LAYER_STYLE_DEFAULT)
        if not in_place:
            style["fillcolor"] = choose_color_by_layertype(layer.type)
        nodes[node] = (label, style, step)
        for bottom in layer.bottom:
            blob = f"{bottom}_blob"
            if blob not in nodes:
                nodes[blob] = (_quote(bottom), dict(BLOB_STYLE), None)
            edges.append((blob, node, None))
        edge_label = get_edge_label(layer) if label_edges else None
        for top in layer.top:
            blob = f"{top}_blob"
            if blob not in nodes:
                nodes[blob] = (_quote(top), dict(BLOB_STYLE), step)
            edges.append((node, blob, edge_label))

    # With step clusters, newrank keeps the recurrent edges' rank constraints
    # across clusters, so the steps are laid out in time order.
    ranking = ", newrank=true" if any(steps.values()) else ""
    lines = [f"digraph {_quote(name)} {{",
             f"  graph [rankdir={_quote(rankdir)}{ranking}];"]
    clusters: OrderedDict[int, list[str]] = OrderedDict()
    for node, (label, style, step) in nodes.items():
        line = f"{_quote(node)} [{_attrs({'label': label, **style})}];"
        if step is None:
            lines.append("  " + line)
        else:
            clusters.setdefault(step, []).append(line)
    for step in sorted(clusters):
        lines.append(f"  subgraph {_quote(f'cluster_step_{step}')} {{")
        lines.append(f"    graph [label={_quote(f'step {step}')}, style=\"dashed\"];")
        lines.extend("    " + line for line in clusters[step])
        lines.append("  }")
    for src, dst, label in edges:
        attr = f" [label={_quote(label)}]" if label else ""
        lines.append(f"  {_quote(src)} -> {_quote(dst)}{attr};")
    lines.append("}")
    return "\n".join(lines) + "\n"


# -- rendering -----------------------------------------------------------------------

def _render(dot_text: str, ext: str) -> bytes:
    if ext in ("dot", "gv"):
        return dot_text.encode()
    exe = shutil.which("dot")
    if exe is not None:
        proc = subprocess.run([exe, f"-T{ext}"], input=dot_text.encode(),
                              capture_output=True, check=False)
        if proc.returncode != 0:
            raise RecaffeError(f"Graphviz 'dot -T{ext}' failed: "
                               f"{proc.stderr.decode(errors='replace').strip()}")
        return proc.stdout
    raise RecaffeError(
        f"drawing to .{ext} needs Graphviz's 'dot' program, which was not found on "
        "PATH (install graphviz, e.g. apt-get install graphviz); .dot output needs "
        "nothing"
    )


def get_pydot_graph(caffe_net, rankdir: str, label_edges: bool = True, phase=None,
                    display_lrm: bool = False):
    """The net as a ``pydot.Dot`` graph (needs pydot: pip install pydot)."""
    try:
        import pydot  # noqa: PLC0415
    except ImportError as exc:
        raise RecaffeError("get_pydot_graph needs pydot, which is not installed: "
                           "pip install pydot (get_dot_source needs nothing)") from exc
    text = get_dot_source(caffe_net, rankdir, label_edges, phase, display_lrm)
    return pydot.graph_from_dot_data(text)[0]


def draw_net(caffe_net, rankdir: str, ext: str = "png", phase=None,
             display_lrm: bool = False) -> bytes:
    """The drawn net as bytes of format ``ext`` (``dot``, ``png``, ``svg``, …)."""
    text = get_dot_source(caffe_net, rankdir, True, phase, display_lrm)
    return _render(text, ext.lstrip(".").lower())


def draw_net_to_file(caffe_net, filename: str, rankdir: str = "LR", phase=None,
                     display_lrm: bool = False) -> None:
    """Draw the net into ``filename``; the format follows its extension."""
    ext = filename.rsplit(".", 1)[-1] if "." in filename else "png"
    data = draw_net(caffe_net, rankdir, ext, phase, display_lrm)
    with open(filename, "wb") as f:
        f.write(data)
