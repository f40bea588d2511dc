"""``recaffe unroll`` prints a prototxt that builds and runs."""

from __future__ import annotations

import numpy as np
import pytest

import recaffe
from recaffe.cli.unroll import main
from recaffe.io.prototxt import read_prototxt
from recaffe.proto import caffe_pb2


@pytest.mark.parametrize("cell", ["lstm", "rnn", "gru"])
def test_cli_prints_a_runnable_net(cell, capsys, tmp_path):
    assert main(["--cell", cell, "--T", "3", "--hidden", "4", "--input-dim", "2",
                 "--batch", "2"]) == 0
    text = capsys.readouterr().out
    assert f'name: "{cell}_T3"' in text
    path = tmp_path / "net.prototxt"
    path.write_text(text)
    net = recaffe.Net(str(path), recaffe.TEST)
    out = net.forward(x=np.ones((3, 2, 2), np.float32),
                      cont=np.ones((3, 2), np.float32))
    assert out[f"{cell}_h"].shape == (3, 2, 4)
    assert read_prototxt(str(path), caffe_pb2.NetParameter).layer[0].type == "Input"


def test_cli_rejects_bad_sizes(capsys):
    assert main(["--T", "0", "--hidden", "4", "--input-dim", "2"]) == 1
    assert "--T must be >= 1" in capsys.readouterr().err
