"""examples/lenet: digits -> LMDB -> the talk's LeNet; learns at tiny settings."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

import recaffe
from recaffe.io.prototxt import read_prototxt
from recaffe.proto import caffe_pb2

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "lenet"

needs_sklearn = pytest.mark.skipif(
    importlib.util.find_spec("sklearn") is None,
    reason="scikit-learn is not installed (the example reads its bundled digits; "
           "pip install 'recaffe[examples]')")

TRAIN_LOSS = re.compile(r"Iteration \d+ \([^)]*\), loss = (\S+)")
TEST_ACCURACY = re.compile(r"Test net output #\d+: accuracy = (\S+)")


def test_lenet_files_are_the_talks_net():
    net = read_prototxt(str(EXAMPLE / "lenet_train_test.prototxt"),
                        caffe_pb2.NetParameter)
    data = [lp for lp in net.layer if lp.type == "Data"]
    assert len(data) == 2
    for lp in data:
        assert lp.transform_param.scale == pytest.approx(0.00392156862745)
        assert lp.data_param.backend == caffe_pb2.DataParameter.LMDB
    conv1 = next(lp for lp in net.layer if lp.name == "conv1")
    assert conv1.convolution_param.num_output == 20
    assert list(conv1.convolution_param.kernel_size) == [5]
    assert conv1.convolution_param.weight_filler.type == "xavier"
    pool1 = next(lp for lp in net.layer if lp.name == "pool1")
    assert pool1.pooling_param.pool == caffe_pb2.PoolingParameter.MAX
    solver = read_prototxt(str(EXAMPLE / "lenet_solver.prototxt"),
                           caffe_pb2.SolverParameter)
    assert solver.net == "examples/lenet/lenet_train_test.prototxt"


@needs_sklearn
def test_lenet_learns(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE / "train.py"), "--out", str(out), "--quiet",
         "--iters", "60", "--test-interval", "30", "--display", "5"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    log = (out / "lenet.log").read_text()
    losses = [float(v) for v in TRAIN_LOSS.findall(log)]
    assert len(losses) >= 10 and losses[-1] < 0.5 * losses[0], losses
    accs = [float(v) for v in TEST_ACCURACY.findall(log)]
    assert accs[0] < 0.3 and accs[-1] > 0.7, accs  # chance is 0.1
    assert (out / "digits_mean.binaryproto").is_file()
    assert (out / "lenet_iter_60.caffemodel").is_file()

    # The talk's shapes: 28x28 data, conv1 20x24x24, pool1 20x12x12.
    net = recaffe.Net(str(out / "lenet_train_test.prototxt"), recaffe.TEST,
                      weights=str(out / "lenet_iter_60.caffemodel"))
    out_blobs = net.forward()
    assert net.blobs["data"].data.shape == (90, 1, 28, 28)
    assert net.blobs["conv1"].data.shape == (90, 20, 24, 24)
    assert net.blobs["pool1"].data.shape == (90, 20, 12, 12)
    assert float(net.blobs["data"].data.max()) <= 1.0
    assert float(out_blobs["accuracy"]) > 0.7
