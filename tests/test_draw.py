"""draw: DOT text in Caffe's style, phase filtering, step clusters, the CLI."""

import pathlib
import shutil
import sys

import pytest
from google.protobuf import text_format

import recaffe as caffe
from recaffe import draw
from recaffe.cli import draw as draw_cli
from recaffe.errors import RecaffeError
from recaffe.proto import caffe_pb2

GOLDEN = pathlib.Path(__file__).parent / "golden"
ROOT = pathlib.Path(__file__).resolve().parents[1]


def _lenet():
    return text_format.Parse((GOLDEN / "netspec_lenet.prototxt").read_text(),
                             caffe_pb2.NetParameter())


def test_dot_source_styles():
    dot = draw.get_dot_source(_lenet(), "LR")
    assert dot.startswith('digraph "Net" {')
    assert 'rankdir="LR"' in dot
    assert '"conv1_Convolution" [label="conv1\\n(Convolution)\\nkernel size: 5' in dot
    assert 'fillcolor="#FF5050"' in dot and 'fillcolor="#FF9900"' in dot
    assert '"data_blob" [label="data", shape="octagon"' in dot
    # in-place ReLU: green, with edges to and from the same blob
    assert ('"relu1_ReLU" [label="relu1\\n(ReLU)", shape="record", '
            'fillcolor="#90EE90"') in dot
    assert '"ip1_blob" -> "relu1_ReLU";' in dot
    assert '"relu1_ReLU" -> "ip1_blob";' in dot
    assert '"conv1_Convolution" -> "conv1_blob" [label="20"];' in dot
    assert "(Pooling MAX)" in dot
    assert "cluster" not in dot  # not an unrolled net


def test_rankdir_tb_uses_spaces():
    dot = draw.get_dot_source(_lenet(), "TB")
    assert '[label="conv1 (Convolution) kernel size: 5' in dot


def test_phase_filtering():
    net = caffe_pb2.NetParameter()
    text_format.Parse("""
      layer { name: 'a' type: 'Input' top: 'x' include { phase: TRAIN } }
      layer { name: 'b' type: 'Input' top: 'x' include { phase: TEST } }
      layer { name: 'c' type: 'ReLU' bottom: 'x' top: 'y' exclude { phase: TEST } }
    """, net)
    all_ = draw.get_dot_source(net, "LR")
    train = draw.get_dot_source(net, "LR", phase=caffe.TRAIN)
    test = draw.get_dot_source(net, "LR", phase=caffe.TEST)
    assert '"a_Input"' in all_ and '"b_Input"' in all_
    assert '"a_Input"' in train and '"b_Input"' not in train and '"c_ReLU"' in train
    assert '"a_Input"' not in test and '"b_Input"' in test and '"c_ReLU"' not in test


def test_unrolled_net_steps_are_clusters():
    sys.path.insert(0, str(ROOT / "examples" / "binary_addition"))
    try:
        import manual_unroll
    finally:
        sys.path.pop(0)
    net = manual_unroll.binary_addition_train(3, 2)
    steps = draw.step_of_layers(net.layer)
    assert steps["zX1"] == 1 and steps["a3"] == 3 and steps["out2"] == 2
    assert "X" not in steps and "HDF5" not in steps and "DummyData1" not in steps
    dot = draw.get_dot_source(net, "LR")
    for k in (1, 2, 3):
        assert f'subgraph "cluster_step_{k}"' in dot
    step2 = dot.split('subgraph "cluster_step_2"')[1].split("}")[0]
    assert '"zX2_InnerProduct"' in step2 and '"a2_blob"' in step2


def test_t_suffix_steps():
    net = caffe_pb2.NetParameter()
    text_format.Parse("""
      layer { name: 'x' type: 'Input' top: 'x' }
      layer { name: 'h_t0' type: 'InnerProduct' bottom: 'x' top: 'h0'
        param { name: 'W' } }
      layer { name: 'h_t1' type: 'InnerProduct' bottom: 'h0' top: 'h1'
        param { name: 'W' } }
    """, net)
    assert draw.step_of_layers(net.layer) == {"h_t0": 0, "h_t1": 1}


def test_record_labels_are_escaped():
    net = caffe_pb2.NetParameter()
    text_format.Parse("layer { name: 'a|b{c}' type: 'Input' top: 'x\"y' }", net)
    dot = draw.get_dot_source(net, "LR")
    assert 'label="a\\|b\\{c\\}\\n(Input)"' in dot
    assert '"x\\"y_blob" [label="x\\"y"' in dot


def test_draw_net_dot_and_file(tmp_path):
    data = draw.draw_net(_lenet(), "LR", ext="dot")
    assert data.startswith(b"digraph")
    out = tmp_path / "net.dot"
    draw.draw_net_to_file(_lenet(), str(out), "TB")
    assert out.read_bytes() == draw.draw_net(_lenet(), "TB", ext="dot")


@pytest.mark.skipif(shutil.which("dot") is not None, reason="Graphviz installed")
def test_image_format_without_graphviz_is_a_clear_error():
    with pytest.raises(RecaffeError, match="Graphviz"):
        draw.draw_net(_lenet(), "LR", ext="png")


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot")
def test_png_with_graphviz(tmp_path):
    assert draw.draw_net(_lenet(), "LR", ext="png").startswith(b"\x89PNG")


def test_cli(tmp_path, capsys):
    out = tmp_path / "lenet.dot"
    rc = draw_cli.main([str(GOLDEN / "netspec_lenet.prototxt"), str(out),
                        "--rankdir", "TB", "--phase", "TEST"])
    assert rc == 0
    assert out.read_text().startswith('digraph "Net" {')
    assert 'rankdir="TB"' in out.read_text()
    with pytest.raises(SystemExit):
        draw_cli.main([str(GOLDEN / "netspec_lenet.prototxt"), str(out),
                       "--phase", "VAL"])
