"""Text-format reading/writing and atomic writes."""

from __future__ import annotations

import os
import re

import pytest
from google.protobuf import text_format

from recaffe.errors import PrototxtError, RecaffeError
from recaffe.io.atomic import atomic_open, atomic_write
from recaffe.io.prototxt import parse_prototxt, read_prototxt, to_text, write_prototxt
from recaffe.proto import caffe_pb2

GOLDEN = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "golden"
)

GOLDEN_FILES = {
    "lenet_train_test.prototxt": caffe_pb2.NetParameter,
    "lenet_solver.prototxt": caffe_pb2.SolverParameter,
    "lstm_lrcn_style.prototxt": caffe_pb2.NetParameter,
    "v1_lenet.prototxt": caffe_pb2.NetParameter,
    "deploy_input_dim.prototxt": caffe_pb2.NetParameter,
}


# ---------------------------------------------------------------------------
# Golden files
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(GOLDEN_FILES))
def test_golden_files_parse(name):
    msg = read_prototxt(os.path.join(GOLDEN, name), GOLDEN_FILES[name])
    assert msg.ByteSize() > 0


def test_golden_lenet_content():
    net = read_prototxt(os.path.join(GOLDEN, "lenet_train_test.prototxt"),
                        caffe_pb2.NetParameter)
    assert net.name == "LeNet"
    assert [lp.name for lp in net.layer] == [
        "mnist", "mnist", "conv1", "pool1", "conv2", "pool2", "ip1", "relu1", "ip2",
        "accuracy", "loss"]
    assert net.layer[0].include[0].phase == caffe_pb2.TRAIN
    assert net.layer[1].include[0].phase == caffe_pb2.TEST
    assert net.layer[0].data_param.backend == caffe_pb2.DataParameter.LMDB
    conv1 = net.layer[2]
    assert [p.lr_mult for p in conv1.param] == [1, 2]
    assert list(conv1.convolution_param.kernel_size) == [5]
    assert net.layer[3].pooling_param.pool == caffe_pb2.PoolingParameter.MAX


def test_golden_lstm_content():
    net = read_prototxt(os.path.join(GOLDEN, "lstm_lrcn_style.prototxt"),
                        caffe_pb2.NetParameter)
    by_name = {lp.name: lp for lp in net.layer if lp.name != "data"}
    lstm = by_name["lstm1"]
    assert lstm.type == "LSTM"
    assert list(lstm.bottom) == ["embedded_input_sentence", "cont_sentence"]
    assert lstm.recurrent_param.num_output == 1000
    assert lstm.recurrent_param.weight_filler.type == "uniform"
    assert lstm.recurrent_param.weight_filler.min == pytest.approx(-0.08)
    assert by_name["predict"].inner_product_param.axis == 2
    loss = by_name["cross_entropy_loss"]
    assert loss.loss_param.ignore_label == -1
    assert loss.softmax_param.axis == 2
    assert by_name["accuracy"].accuracy_param.axis == 2
    # `dropout_param: { ... }` (colon before a message) is accepted.
    assert by_name["embed_drop"].dropout_param.dropout_ratio == pytest.approx(0.5)


def test_golden_solver_content():
    s = read_prototxt(os.path.join(GOLDEN, "lenet_solver.prototxt"),
                      caffe_pb2.SolverParameter)
    assert s.lr_policy == "inv"
    assert s.base_lr == pytest.approx(0.01)
    assert list(s.test_iter) == [100]
    assert s.solver_mode == caffe_pb2.SolverParameter.CPU
    assert s.type == "SGD"


# ---------------------------------------------------------------------------
# Caffe text quirks
# ---------------------------------------------------------------------------


def test_colon_before_brace_comments_lists_and_quotes():
    text = """
    # leading comment
    name: 'quirky'   # trailing comment
    layer: {
      name: "c" type: "Convolution"
      convolution_param: { kernel_size: [3, 5] pad: 1 }
    }
    layer { name: "p" type: "Pooling" pooling_param { pool: AVE } }
    """
    net = parse_prototxt(text, caffe_pb2.NetParameter)
    assert net.name == "quirky"
    assert list(net.layer[0].convolution_param.kernel_size) == [3, 5]
    assert net.layer[1].pooling_param.pool == caffe_pb2.PoolingParameter.AVE


def test_enum_by_number_and_bytes_input():
    net = parse_prototxt(b'state { phase: 0 }', caffe_pb2.NetParameter)
    assert net.state.phase == caffe_pb2.TRAIN


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


def test_parse_error_has_file_line_column(tmp_path):
    path = tmp_path / "bad.prototxt"
    path.write_text('name: "x"\nlayer {\n  name: "a"\n  type: Convolution\n}\n')
    with pytest.raises(PrototxtError) as info:
        read_prototxt(path, caffe_pb2.NetParameter)
    msg = str(info.value)
    assert msg.startswith(f"{path}:4:")
    assert isinstance(info.value, RecaffeError)
    assert info.value.line == 4


def test_unknown_field_hint():
    text = 'layer {\n  name: "a"\n  bottm: "data"\n}\n'
    with pytest.raises(PrototxtError) as info:
        parse_prototxt(text, caffe_pb2.NetParameter, filename="net.prototxt")
    msg = str(info.value)
    assert msg.startswith("net.prototxt:3:3: ")
    assert '"bottm"' in msg
    assert "did you mean 'bottom'?" in msg


def test_unknown_field_hint_for_nested_message():
    text = "layer { convolution_param { num_ouput: 3 } }"
    with pytest.raises(PrototxtError, match="did you mean 'num_output'"):
        parse_prototxt(text, caffe_pb2.NetParameter)


def test_field_in_wrong_message_names_its_owner():
    with pytest.raises(PrototxtError, match="'convolution_param'"):
        parse_prototxt("layer { kernel_size: 3 }", caffe_pb2.NetParameter)


def test_unknown_enum_value_hint():
    with pytest.raises(PrototxtError, match="did you mean 'AVE'"):
        parse_prototxt("layer { pooling_param { pool: AVG } }", caffe_pb2.NetParameter)


def test_duplicate_singular_field_is_an_error():
    with pytest.raises(PrototxtError, match="<string>:2:"):
        parse_prototxt('name: "a"\nname: "b"\n', caffe_pb2.NetParameter)


def test_missing_required_field_is_an_error():
    with pytest.raises(PrototxtError, match=r"clip_param\.max"):
        parse_prototxt("layer { clip_param { min: 0 } }", caffe_pb2.NetParameter)


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.prototxt"
    with pytest.raises(PrototxtError, match="could not open file") as info:
        read_prototxt(missing, caffe_pb2.NetParameter)
    assert str(missing) in str(info.value)


def test_invalid_utf8():
    with pytest.raises(PrototxtError, match="UTF-8"):
        parse_prototxt(b'name: "\xff\xfe"', caffe_pb2.NetParameter, filename="f")


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(GOLDEN_FILES))
def test_round_trip_text(tmp_path, name):
    cls = GOLDEN_FILES[name]
    msg = read_prototxt(os.path.join(GOLDEN, name), cls)
    # Caffe's printing: fields in declaration order, floats as the shortest of
    # %.6g/%.9g that reads back to the same float32. It must parse back to the
    # very message protobuf's own printing gives.
    ours = to_text(msg)
    theirs = text_format.MessageToString(msg)
    assert text_format.Parse(ours, cls()) == text_format.Parse(theirs, cls()) == msg
    assert sorted(re.sub(r"(\d)\.0$", r"\1", ln) for ln in theirs.splitlines()) == \
        sorted(ours.splitlines())
    out = tmp_path / "out.prototxt"
    write_prototxt(msg, out)
    assert out.read_text() == ours
    again = read_prototxt(out, cls)
    assert again == msg
    assert to_text(again) == to_text(msg)


def test_to_text_layout():
    net = caffe_pb2.NetParameter(name="n")
    layer = net.layer.add(name="ip", type="InnerProduct", bottom=["x"], top=["y"])
    layer.inner_product_param.num_output = 3
    assert to_text(net) == (
        'name: "n"\n'
        "layer {\n"
        '  name: "ip"\n'
        '  type: "InnerProduct"\n'
        '  bottom: "x"\n'
        '  top: "y"\n'
        "  inner_product_param {\n"
        "    num_output: 3\n"
        "  }\n"
        "}\n"
    )


def _leftovers(directory):
    return sorted(p for p in os.listdir(directory) if p.endswith(".tmp"))


def test_atomic_write_leaves_no_temp_files(tmp_path):
    target = tmp_path / "f.bin"
    atomic_write(target, b"abc")
    atomic_write(target, "déf")
    assert target.read_bytes() == "déf".encode()
    assert sorted(os.listdir(tmp_path)) == ["f.bin"]


def test_atomic_write_new_file_gets_normal_permissions(tmp_path):
    target = tmp_path / "f.txt"
    atomic_write(target, "x")
    umask = os.umask(0)
    os.umask(umask)
    assert (os.stat(target).st_mode & 0o777) == (0o666 & ~umask)


def test_atomic_open_exception_keeps_old_content(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")

    class Boom(Exception):
        pass

    with pytest.raises(Boom), atomic_open(target, "w") as fh:
        fh.write("new, partial")
        raise Boom
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == []
    assert sorted(os.listdir(tmp_path)) == ["f.txt"]


def test_atomic_open_text_and_binary(tmp_path):
    with atomic_open(tmp_path / "t.txt", "w") as fh:
        fh.write("line\n")
    with atomic_open(tmp_path / "b.bin") as fh:
        fh.write(b"\x00\x01")
    assert (tmp_path / "t.txt").read_text() == "line\n"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    with pytest.raises(ValueError), atomic_open(tmp_path / "r", "r"):
        pass
