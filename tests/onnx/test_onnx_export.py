"""The export's interface: names, shapes, opset, checker, errors, the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

import recaffe
from recaffe.cli.__main__ import main as cli_main
from recaffe.onnx import OnnxExportError, export

REPO = Path(__file__).resolve().parents[2]
LENET = REPO / "examples" / "lenet" / "lenet_deploy.prototxt"

INPLACE = """
name: "inplace"
layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "fc" type: "InnerProduct" bottom: "x" top: "fc"
        inner_product_param { num_output: 4 } }
layer { name: "relu" type: "ReLU" bottom: "fc" top: "fc" }
layer { name: "scale" type: "Power" bottom: "fc" top: "fc" power_param { scale: 2 } }
"""


def test_names_shapes_opset_and_checker(tmp_path, onnx_tools):
    net = recaffe.Net(str(LENET), recaffe.TEST)
    path = tmp_path / "lenet.onnx"
    export(net, path)
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert model.opset_import[0].version == 18
    ins = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim]
           for i in model.graph.input}
    outs = {o.name: [d.dim_value for d in o.type.tensor_type.shape.dim]
            for o in model.graph.output}
    assert ins == {"data": [64, 1, 28, 28]}
    assert outs == {"prob": [64, 10]}
    assert sorted(t.name for t in model.graph.initializer if "/param" in t.name) == [
        f"{layer}/param{j}" for layer in ("conv1", "conv2", "ip1", "ip2")
        for j in (0, 1)]
    w = next(t for t in model.graph.initializer if t.name == "ip1/param0")
    np.testing.assert_array_equal(onnx.numpy_helper.to_array(w),
                                  net.params["ip1"][0].data)


def test_a_blob_written_in_place_keeps_its_name(onnx_tools):
    net = onnx_tools.net_from_text(INPLACE)
    onnx_tools.randomize(net)
    model, errors = onnx_tools.export_and_check(net)
    assert list(errors) == ["fc"]
    names = [o for n in model.graph.node for o in n.output]
    assert names.count("fc") == 1 and "fc/relu" in names


class PassThrough(recaffe.Layer):
    """A Python layer: y = x."""

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data


@pytest.mark.parametrize("body,message", [
    ('layer { name: "py" type: "Python" bottom: "x" top: "y" python_param { '
     f'module: "{__name__}" layer: "PassThrough" }} }}',
     "Python layer 'py': a Python layer runs arbitrary code"),
    ('layer { name: "spp" type: "SPP" bottom: "x" top: "y" '
     'spp_param { pyramid_height: 2 } }',
     "SPP layer 'spp': layer type SPP has no ONNX converter"),
    ('layer { name: "noise" type: "DummyData" top: "n" dummy_data_param { '
     'shape { dim: 2 dim: 3 dim: 4 dim: 4 } data_filler { type: "gaussian" } } }',
     "DummyData layer 'noise': top 'n' uses the random filler 'gaussian'"),
    ('layer { name: "loss" type: "EuclideanLoss" bottom: "x" bottom: "x" top: "l" }'
     'layer { name: "after" type: "Power" bottom: "l" top: "y" }',
     "EuclideanLoss layer 'loss': only losses at the end of a net"),
    ('layer { name: "p" type: "Pooling" bottom: "x" top: "y" pooling_param { '
     'pool: STOCHASTIC kernel_size: 2 } }',
     "Pooling layer 'p': STOCHASTIC pooling is not exported"),
])
def test_unsupported_layers_are_named(body, message, onnx_tools):
    text = ('name: "bad" layer { name: "in" type: "Input" top: "x" input_param { '
            'shape { dim: 2 dim: 3 dim: 4 dim: 4 } } }\n' + body)
    net = onnx_tools.net_from_text(text)
    with pytest.raises(OnnxExportError) as err:
        export(net)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_data_layers_are_refused(onnx_tools):
    text = ('layer { name: "mem" type: "MemoryData" top: "x" top: "label" '
            'memory_data_param { batch_size: 2 channels: 3 height: 1 width: 1 } }'
            'layer { name: "fc" type: "InnerProduct" bottom: "x" top: "y" '
            'inner_product_param { num_output: 2 } }')
    net = onnx_tools.net_from_text(text)
    with pytest.raises(OnnxExportError, match="MemoryData layer 'mem': data layers "
                       "cannot be exported; export a deploy net"):
        export(net)


def test_bad_opset(onnx_tools):
    net = onnx_tools.net_from_text(INPLACE)
    with pytest.raises(OnnxExportError, match="opset 11 is not supported"):
        export(net, opset=11)


def test_cli_exports_and_checks(tmp_path, capsys):
    net = recaffe.Net(str(LENET), recaffe.TEST)
    weights = tmp_path / "lenet.caffemodel"
    net.save(str(weights))
    out = tmp_path / "lenet.onnx"
    rc = cli_main(["export-onnx", "-model", str(LENET), "-weights", str(weights),
                   "-o", str(out), "-dynamic_batch", "-outputs", "ip1", "-check"])
    assert rc == 0
    err = capsys.readouterr().err
    assert "ONNX Runtime check passed: 2 output(s)" in err
    model = onnx.load(str(out))
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    w = next(t for t in model.graph.initializer if t.name == "conv1/param0")
    np.testing.assert_array_equal(onnx.numpy_helper.to_array(w),
                                  net.params["conv1"][0].data)


def test_cli_error_is_one_line(tmp_path, capsys):
    proto = tmp_path / "bad.prototxt"
    proto.write_text(
        'name: "bad" layer { name: "in" type: "Input" top: "x" input_param { '
        'shape { dim: 2 dim: 3 dim: 4 dim: 4 } } }\n'
        'layer { name: "spp" type: "SPP" bottom: "x" top: "y" '
        'spp_param { pyramid_height: 2 } }')
    rc = cli_main(["export-onnx", "-model", str(proto), "-o", str(tmp_path / "x.onnx")])
    assert rc == 1
    lines = [ln for ln in capsys.readouterr().err.splitlines()
             if ln.startswith("recaffe:")]
    assert lines == ["recaffe: error: SPP layer 'spp': layer type SPP has no ONNX "
                     "converter"]
    assert not (tmp_path / "x.onnx").exists()


def test_newer_opset(onnx_tools):
    net = recaffe.Net(str(LENET), recaffe.TEST)
    onnx_tools.randomize(net)
    model, _ = onnx_tools.export_and_check(net, opset=21)
    assert model.opset_import[0].version == 21
    assert model.ir_version >= 10
