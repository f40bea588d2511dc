"""Python layers written for BVLC Caffe (``import caffe``, ``caffe.Layer``) load
unchanged under every entry point, and a module or class that cannot be loaded
is one line naming the layer, module, class and the underlying error."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import recaffe
from recaffe.errors import LayerSetupError

REPO = Path(__file__).resolve().parents[2]

# A Euclidean loss as a layer file for Caffe would be written.
CAFFE_LOSS = textwrap.dedent("""
    import caffe
    import numpy as np


    class SquaredDistance(caffe.Layer):
        def setup(self, bottom, top):
            if len(bottom) != 2:
                raise Exception("two bottoms needed")

        def reshape(self, bottom, top):
            self.delta = np.zeros_like(bottom[0].data, dtype=np.float32)
            top[0].reshape(1)

        def forward(self, bottom, top):
            self.delta[...] = bottom[0].data - bottom[1].data
            top[0].data[...] = np.sum(self.delta ** 2) / bottom[0].num / 2.0

        def backward(self, top, propagate_down, bottom):
            for i, sign in ((0, 1), (1, -1)):
                if propagate_down[i]:
                    bottom[i].diff[...] = sign * self.delta / bottom[i].num
""")

NET = """name: "regression"
layer { name: "x" type: "DummyData" top: "x"
  dummy_data_param { shape { dim: 6 dim: 3 } data_filler { type: "gaussian" } } }
layer { name: "y" type: "DummyData" top: "y"
  dummy_data_param { shape { dim: 6 dim: 4 } data_filler { type: "gaussian" } } }
layer { name: "ipx" type: "InnerProduct" bottom: "x" top: "ipx"
  inner_product_param { num_output: 4 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "Python" bottom: "ipx" bottom: "y" top: "loss"
  python_param { module: "caffe_style_loss" layer: "SquaredDistance" }
  loss_weight: 1 }
"""
SOLVER = ('net: "net.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\nmax_iter: 3\n'
          "display: 1\nsnapshot_after_train: false\n")


@pytest.fixture
def layer_dir(tmp_path, monkeypatch):
    (tmp_path / "caffe_style_loss.py").write_text(CAFFE_LOSS)
    (tmp_path / "net.prototxt").write_text(NET)
    (tmp_path / "solver.prototxt").write_text(SOLVER)
    monkeypatch.chdir(tmp_path)
    sys.modules.pop("caffe_style_loss", None)
    yield tmp_path
    sys.modules.pop("caffe_style_loss", None)
    assert "caffe" not in sys.modules, "the alias must not outlive the import"


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def test_net_from_a_script_that_imported_recaffe(layer_dir):
    net = recaffe.Net("net.prototxt", recaffe.TRAIN)
    loss = net.forward()["loss"]
    d = net.blobs["ipx"].data - net.blobs["y"].data
    np.testing.assert_allclose(loss, np.sum(d ** 2) / 6 / 2, rtol=1e-5)
    net.backward()
    np.testing.assert_allclose(net.blobs["ipx"].diff, d / 6, rtol=1e-5)
    assert isinstance(net.layer_dict["loss"], recaffe.Layer)


@pytest.mark.parametrize("argv", [
    ["time", "-model", "net.prototxt", "-iterations", "2"],
    ["train", "-solver", "solver.prototxt"],
    ["test", "-model", "net.prototxt", "-weights", "w.caffemodel",
     "-iterations", "2"],
])
def test_command_line(layer_dir, argv):
    recaffe.Net("net.prototxt", recaffe.TRAIN).save("w.caffemodel")
    proc = subprocess.run([sys.executable, "-m", "recaffe", *argv], cwd=layer_dir,
                          env=_env(), capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_recaffe_pycaffe_script(layer_dir):
    (layer_dir / "run.py").write_text(textwrap.dedent("""
        import caffe
        net = caffe.Net("net.prototxt", caffe.TRAIN)
        out = net.forward()
        assert out["loss"] > 0
        print("loss ok")
    """))
    proc = subprocess.run([sys.executable, "-m", "recaffe", "pycaffe", "run.py"],
                          cwd=layer_dir, env=_env(), capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "loss ok" in proc.stdout


def test_a_real_caffe_is_not_replaced(layer_dir, monkeypatch):
    # A `caffe` that is already importable is the user's: it is left alone.
    fake = type(sys)("caffe")
    fake.Layer = type("Layer", (), {})
    monkeypatch.setitem(sys.modules, "caffe", fake)
    with pytest.raises(LayerSetupError, match=r"derived from recaffe\.Layer"):
        recaffe.Net("net.prototxt", recaffe.TRAIN)
    monkeypatch.delitem(sys.modules, "caffe")


@pytest.mark.parametrize("source, pattern", [
    ("import caffe\nimport not_a_package_xyz\n",
     r"^Python layer 'loss': cannot load class 'SquaredDistance' from module "
     r"'caffe_style_loss': ModuleNotFoundError: No module named "
     r"'not_a_package_xyz' at .*caffe_style_loss\.py:2$"),
    ("import caffe\nclass Other(caffe.Layer):\n    pass\n",
     r"^Python layer 'loss': cannot load class 'SquaredDistance' from module "
     r"'caffe_style_loss' \(.*\): the module has no attribute 'SquaredDistance'$"),
    ("import caffe\ndef broken(:\n",
     r"^Python layer 'loss': cannot load class 'SquaredDistance' from module "
     r"'caffe_style_loss': SyntaxError: .* at .*caffe_style_loss\.py:2$"),
    ("raise ValueError('bad config')\n",
     r"^Python layer 'loss': cannot load class 'SquaredDistance' from module "
     r"'caffe_style_loss': ValueError: bad config at .*caffe_style_loss\.py:1$"),
])
def test_unloadable_module_is_a_typed_error(layer_dir, source, pattern):
    (layer_dir / "caffe_style_loss.py").write_text(source)
    with pytest.raises(LayerSetupError, match=pattern):
        recaffe.Net("net.prototxt", recaffe.TRAIN)


def test_unloadable_module_from_the_command_line(layer_dir):
    (layer_dir / "caffe_style_loss.py").write_text("import caffe\nimport nope_xyz\n")
    proc = subprocess.run([sys.executable, "-m", "recaffe", "time", "-model",
                           "net.prototxt"], cwd=layer_dir, env=_env(),
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "recaffe: error: Python layer 'loss': cannot load class 'SquaredDistance' "
        "from module 'caffe_style_loss': ModuleNotFoundError: No module named "
        f"'nope_xyz' at {layer_dir / 'caffe_style_loss.py'}:2")


def test_missing_module_names_layer_module_and_class(layer_dir):
    (layer_dir / "caffe_style_loss.py").unlink()
    with pytest.raises(LayerSetupError, match=r"^Python layer 'loss': cannot load "
                       r"class 'SquaredDistance': no module 'caffe_style_loss'"):
        recaffe.Net("net.prototxt", recaffe.TRAIN)
