"""Whole nets: the BVLC model-zoo deploy nets and the examples' deploy nets,
exported (random weights) and checked with ONNX Runtime against recaffe.

The CaffeNet family runs at 67x67 (pool5 is then 1x1, so fc6 stays small) and
batch 1 to keep the suite fast; GoogLeNet, whose 7x7 average pooling fixes the
input at 224x224, runs at full size with batch 1.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import recaffe
from recaffe.io.prototxt import read_prototxt
from recaffe.onnx.check import relative_error
from recaffe.proto import caffe_pb2

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden"
EXAMPLES = REPO / "examples"

BVLC = {
    "caffenet": (GOLDEN / "caffenet_deploy.prototxt", 67, "prob"),
    "alexnet": (GOLDEN / "bvlc" / "alexnet_deploy.prototxt", 67, "prob"),
    "rcnn_ilsvrc13": (GOLDEN / "bvlc" / "rcnn_ilsvrc13_deploy.prototxt", 67,
                      "fc-rcnn"),
    "flickr_style": (GOLDEN / "bvlc" / "flickr_style_deploy.prototxt", 67, "prob"),
    "googlenet": (GOLDEN / "bvlc" / "googlenet_deploy.prototxt", 224, "prob"),
}


def _deploy(path: Path, size: int):
    param = read_prototxt(str(path), caffe_pb2.NetParameter)
    shape = param.layer[0].input_param.shape[0]
    del shape.dim[:]
    shape.dim.extend([1, 3, size, size])
    return recaffe.Net(param, recaffe.TEST)


@pytest.mark.parametrize("model", sorted(BVLC))
def test_bvlc_deploy_model(model, onnx_tools):
    path, size, output = BVLC[model]
    net = _deploy(path, size)
    onnx_tools.randomize(net, seed=11)
    onnx_model, errors = onnx_tools.export_and_check(net)
    assert list(errors) == [output]
    assert [i.name for i in onnx_model.graph.input] == ["data"]
    # Each parameter blob is one initializer.
    n_init = sum(int(np.prod(t.dims)) for t in onnx_model.graph.initializer
                 if "/param" in t.name)
    assert n_init == sum(b.count for b in net.learnable_params)


def _example(relpath: str, name: str):
    path = EXAMPLES / relpath
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module


def test_lenet_deploy_dynamic_batch(onnx_tools):
    net = recaffe.Net(str(EXAMPLES / "lenet" / "lenet_deploy.prototxt"), recaffe.TEST)
    onnx_tools.randomize(net, seed=12)
    model, errors = onnx_tools.export_and_check(net, dynamic_batch=True)
    assert list(errors) == ["prob"]
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "N" and [d.dim_value for d in dims[1:]] == [1, 28, 28]
    # Another batch size runs through the same graph (the net is reshaped).
    rng = np.random.default_rng(13)
    feeds = {"data": rng.standard_normal((5, 1, 28, 28)).astype(np.float32)}
    errors = recaffe.onnx.check(net, model, feeds, rtol=onnx_tools.rtol)
    assert errors["prob"] <= onnx_tools.rtol


def test_binary_addition_deploy(onnx_tools):
    mod = _example("binary_addition/net_unroll.py", "ba_net_unroll")
    param = mod.binary_addition_net(9, 4, source=None, with_loss=False)
    net = recaffe.Net(param, recaffe.TEST)
    onnx_tools.randomize(net, seed=14)
    bits = np.random.default_rng(15).integers(0, 2, (4, 1, 1, 18)).astype(np.float32)
    model, errors = onnx_tools.export_and_check(net, {"data": bits})
    assert list(errors) == ["output"]
    # The unrolled steps share WX, bX, WH, WO, bO: one initializer each.
    names = [t.name for t in model.graph.initializer]
    for shared in ("WX", "bX", "WH", "WO", "bO"):
        assert names.count(shared) == 1


@pytest.mark.parametrize("impl", ["layer", "unroll"])
def test_char_rnn_deploy_with_carried_state(impl, onnx_tools):
    """The char-LSTM LM's deploy net (T = 1, N = 1) fed one character at a
    time with its state carried: the LSTM layer's internal state through the
    export's state inputs/outputs, the unrolled net's through its Input blobs."""
    charnet = _example("char_rnn/charnet.py", "char_rnn_charnet")
    vocab = 12
    param, carry = charnet.build(impl, 1, 1, vocab_size=vocab, hidden=8,
                                 num_layers=2, embed=6, stage="deploy")
    net = recaffe.Net(param, recaffe.TEST)
    onnx_tools.randomize(net, seed=16)
    model = recaffe.onnx.export(net, carry_state=True,
                                extra_outputs=[src for src, _ in carry])
    inputs = [i.name for i in model.graph.input]
    outputs = [o.name for o in model.graph.output]
    # State pairs (ONNX input <- ONNX output of the previous step).
    if impl == "layer":
        pairs = [(f"lstm{k}_{s}_0", f"lstm{k}_{s}_T") for k in (1, 2) for s in "hc"]
        step = charnet.StateCarry(net, [])
    else:
        pairs = [(dst, src) for src, dst in carry]
        step = charnet.StateCarry(net, carry)
    assert {p[0] for p in pairs} <= set(inputs)
    assert {p[1] for p in pairs} <= set(outputs)
    state = {dst: np.zeros((1, 1, 8), np.float32) for dst, _ in pairs}
    ids = np.random.default_rng(17).integers(0, vocab, 6)
    for t, char in enumerate(ids):
        step()
        net.blobs["data"].data[...] = char
        net.blobs["cont"].data[...] = 0.0 if t in (0, 3) else 1.0
        net.forward()
        feeds = {"data": np.full((1, 1), char, np.float32),
                 "cont": np.full((1, 1), 0.0 if t in (0, 3) else 1.0, np.float32)}
        out = recaffe.onnx.run(model, {**feeds, **state})
        err = relative_error(out["prob"], net.blobs["prob"].data)
        assert err <= onnx_tools.rtol, (t, err)
        state = {dst: out[src] for dst, src in pairs}


def test_sine_wave_deploy(onnx_tools):
    mod = _example("sine_wave/train.py", "sine_wave_train")
    net = recaffe.Net(mod.build(5, 3, 7, deploy=True), recaffe.TEST)
    onnx_tools.randomize(net, seed=18)
    cont = np.ones((5, 3), np.float32)
    cont[0] = 0
    cont[2, 1] = 0
    _, errors = onnx_tools.export_and_check(net, {"cont": cont})
    assert list(errors) == ["pred"]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_digits_sequence_net(cell, onnx_tools):
    """The digits-sequence net without its loss/accuracy: the scores."""
    mod = _example("digits_sequence/train.py", "digits_sequence_train")
    net = recaffe.Net(mod.build(cell, 4, 6, test=True), recaffe.TEST)
    onnx_tools.randomize(net, seed=19)
    cont = np.ones((8, 4), np.float32)
    cont[0] = 0
    model, errors = onnx_tools.export_and_check(net, {"cont": cont})
    assert list(errors) == ["score"]
    assert "label" not in [i.name for i in model.graph.input]
    assert "left out" in model.doc_string
