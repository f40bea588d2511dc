"""Python layers: the standard battery plus ports of pycaffe's own tests.

The user layer classes live in this module; prototxt refers to them by this
module's import name, so they load however pytest imports the file.
"""

import os

import numpy as np
import pytest

import recaffe
from recaffe.errors import LayerSetupError
from recaffe.testing.layer_test import Case, LayerTestCase, make_layer

MOD = __name__


class SimpleLayer(recaffe.Layer):
    """Multiply by 10 (pycaffe's test_python_layer.SimpleLayer)."""

    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = 10 * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff[...] = 10 * top[0].diff


class ExceptionLayer(recaffe.Layer):
    """Raises in setup, so the Net constructor must raise the same type."""

    def setup(self, bottom, top):
        raise RuntimeError("setup failed on purpose")


class ParameterLayer(recaffe.Layer):
    """One learnable scalar (pycaffe's test_python_layer.ParameterLayer)."""

    def setup(self, bottom, top):
        self.blobs.add_blob(1)
        self.blobs[0].data[0] = 0

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        pass

    def backward(self, top, propagate_down, bottom):
        self.blobs[0].diff[0] = 1


class PhaseLayer(recaffe.Layer):
    """A top-only layer that writes its phase into a 0-axis top."""

    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape()

    def forward(self, bottom, top):
        top[0].data[()] = self.phase

    def backward(self, top, propagate_down, bottom):
        pass


class SimpleParamLayer(recaffe.Layer):
    """Multiply by ``float(param_str)`` (test_python_layer_with_param_str)."""

    def setup(self, bottom, top):
        self.value = float(self.param_str)

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.value * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff[...] = self.value * top[0].diff


class ScaleByParamLayer(recaffe.Layer):
    """top = w * bottom with a learnable scalar w (param-gradient checks)."""

    def setup(self, bottom, top):
        self.blobs.add_blob(1)
        self.blobs[0].data[...] = float(self.param_str or 1.5)

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.blobs[0].data[0] * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        if self.param_propagate_down[0]:
            self.blobs[0].diff[0] += (top[0].diff * bottom[0].data).sum()
        if propagate_down[0]:
            bottom[0].diff[...] = self.blobs[0].data[0] * top[0].diff


rng = np.random.default_rng(3)
X = rng.standard_normal((2, 3, 4))


def _py(layer, param_str=""):
    return (f'type: "Python" python_param {{ module: "{MOD}" layer: "{layer}" '
            f'param_str: "{param_str}" }}')


class TestPython(LayerTestCase):
    layer_type = "Python"
    cases = [
        Case(_py("SimpleParamLayer", "2.5"), [X]),
        Case(_py("ScaleByParamLayer", "0.75"), [X]),
        Case(_py("SimpleLayer"), [X[:1]]),
    ]

    def reference(self, case, bottoms, layer):
        x = bottoms[0]
        if "ScaleByParam" in case.text:
            return [0.75 * x]
        if "SimpleParam" in case.text:
            return [2.5 * x]
        return [10 * x]


def test_instance_attributes():
    layer = make_layer(_py("SimpleParamLayer", "3"), recaffe.TEST)
    assert layer.type == "Python"
    assert layer.param_str == "3"
    assert layer.phase == recaffe.TEST
    assert isinstance(layer, SimpleParamLayer)


def test_default_param_str_is_empty():
    layer = make_layer(f'type: "Python" python_param {{ module: "{MOD}" '
                       'layer: "SimpleLayer" }')
    assert layer.param_str == ""


def test_missing_module_is_a_typed_error():
    with pytest.raises(LayerSetupError, match="no_such_module_xyz"):
        make_layer('type: "Python" python_param { module: "no_such_module_xyz" '
                   'layer: "L" }')


def test_missing_class_is_a_typed_error():
    with pytest.raises(LayerSetupError, match="NoSuchLayer"):
        make_layer(_py("NoSuchLayer"))


def test_non_layer_class_is_a_typed_error():
    with pytest.raises(LayerSetupError, match=r"derived from recaffe\.Layer"):
        make_layer(_py("rng"))


def test_module_found_in_current_directory(tmp_path, monkeypatch):
    (tmp_path / "cwd_only_layers_mod.py").write_text(
        "import recaffe\n"
        "class Twice(recaffe.Layer):\n"
        "    def reshape(self, bottom, top):\n"
        "        top[0].reshape(*bottom[0].shape)\n"
        "    def forward(self, bottom, top):\n"
        "        top[0].data[...] = 2 * bottom[0].data\n"
    )
    monkeypatch.chdir(tmp_path)
    layer = make_layer('type: "Python" python_param { module: "cwd_only_layers_mod" '
                       'layer: "Twice" }')
    assert type(layer).__name__ == "Twice"


# -- ports of pycaffe's test_python_layer.py ------------------------------------

def _net_file(tmp_path, body, name="net.prototxt"):
    path = tmp_path / name
    path.write_text(body)
    return str(path)


def python_net_file(tmp_path):
    return _net_file(tmp_path, f"""name: 'pythonnet' force_backward: true
    input: 'data' input_shape {{ dim: 10 dim: 9 dim: 8 }}
    layer {{ type: 'Python' name: 'one' bottom: 'data' top: 'one'
      python_param {{ module: '{MOD}' layer: 'SimpleLayer' }} }}
    layer {{ type: 'Python' name: 'two' bottom: 'one' top: 'two'
      python_param {{ module: '{MOD}' layer: 'SimpleLayer' }} }}
    layer {{ type: 'Python' name: 'three' bottom: 'two' top: 'three'
      python_param {{ module: '{MOD}' layer: 'SimpleLayer' }} }}""")


@pytest.fixture
def python_net(tmp_path):
    return recaffe.Net(python_net_file(tmp_path), recaffe.TRAIN)


def test_forward(python_net):
    x = 8
    python_net.blobs["data"].data[...] = x
    python_net.forward()
    for y in python_net.blobs["three"].data.flat:
        assert y == 10**3 * x


def test_backward(python_net):
    x = 7
    python_net.blobs["three"].diff[...] = x
    python_net.backward()
    for y in python_net.blobs["data"].diff.flat:
        assert y == 10**3 * x


def test_reshape(python_net):
    s = 4
    python_net.blobs["data"].reshape(s, s, s, s)
    python_net.forward()
    for blob in python_net.blobs.values():
        for d in blob.data.shape:
            assert d == s


def test_exception(tmp_path):
    path = _net_file(tmp_path, f"""name: 'pythonnet' force_backward: true
    input: 'data' input_shape {{ dim: 10 dim: 9 dim: 8 }}
    layer {{ type: 'Python' name: 'layer' bottom: 'data' top: 'top'
      python_param {{ module: '{MOD}' layer: 'ExceptionLayer' }} }}""")
    with pytest.raises(RuntimeError, match="on purpose"):
        recaffe.Net(path, recaffe.TRAIN)


def test_parameter(tmp_path):
    path = _net_file(tmp_path, f"""name: 'pythonnet' force_backward: true
    input: 'data' input_shape {{ dim: 10 dim: 9 dim: 8 }}
    layer {{ type: 'Python' name: 'layer' bottom: 'data' top: 'top'
      python_param {{ module: '{MOD}' layer: 'ParameterLayer' }} }}""")
    net = recaffe.Net(path, recaffe.TRAIN)
    net.forward()
    net.backward()
    layer = net.layers[list(net._layer_names).index("layer")]
    assert layer.blobs[0].data[0] == 0
    assert layer.blobs[0].diff[0] == 1
    assert list(net.params) == ["layer"]
    layer.blobs[0].data[0] += layer.blobs[0].diff[0]
    assert layer.blobs[0].data[0] == 1

    weights = str(tmp_path / "w.caffemodel")
    net.save(weights)
    layer.blobs[0].data[0] = -1
    assert layer.blobs[0].data[0] == -1
    net.copy_from(weights)
    assert layer.blobs[0].data[0] == 1

    net2 = recaffe.Net(path, recaffe.TRAIN)
    net2.share_with(net)
    layer2 = net2.layers[list(net2._layer_names).index("layer")]
    assert layer2.blobs[0].data[0] == 1


@pytest.mark.parametrize("phase", [recaffe.TRAIN, recaffe.TEST])
def test_phase(tmp_path, phase):
    path = _net_file(tmp_path, f"""name: 'pythonnet' force_backward: true
    layer {{ type: 'Python' name: 'layer' top: 'phase'
      python_param {{ module: '{MOD}' layer: 'PhaseLayer' }} }}""")
    net = recaffe.Net(path, phase)
    assert net.forward()["phase"] == phase


def test_default_loss_weight_is_zero(python_net):
    assert all(w == 0 for w in python_net.blob_loss_weights.values())


def test_python_layer_as_loss(tmp_path):
    path = _net_file(tmp_path, f"""name: 'pythonnet'
    input: 'data' input_shape {{ dim: 2 dim: 3 }}
    layer {{ type: 'Python' name: 'p' bottom: 'data' top: 'p' loss_weight: 1
      python_param {{ module: '{MOD}' layer: 'ScaleByParamLayer'
        param_str: '2' }} }}""")
    net = recaffe.Net(path, recaffe.TRAIN)
    assert net.blob_loss_weights["p"] == 1
    net.blobs["data"].data[...] = 1
    net.forward()
    net.backward()
    # d(sum 2*x)/dw = sum(x) = 6
    assert net.params["p"][0].diff[0] == pytest.approx(6.0)


# -- ports of pycaffe's test_python_layer_with_param_str.py ----------------------

@pytest.fixture
def param_str_net(tmp_path):
    path = _net_file(tmp_path, f"""name: 'pythonnet' force_backward: true
    input: 'data' input_shape {{ dim: 10 dim: 9 dim: 8 }}
    layer {{ type: 'Python' name: 'mul10' bottom: 'data' top: 'mul10'
      python_param {{ module: '{MOD}' layer: 'SimpleParamLayer' param_str: '10' }} }}
    layer {{ type: 'Python' name: 'mul2' bottom: 'mul10' top: 'mul2'
      python_param {{ module: '{MOD}' layer: 'SimpleParamLayer' param_str: '2' }} }}""")
    return recaffe.Net(path, recaffe.TRAIN)


def test_param_str_forward(param_str_net):
    x = 8
    param_str_net.blobs["data"].data[...] = x
    param_str_net.forward()
    for y in param_str_net.blobs["mul2"].data.flat:
        assert y == 2 * 10 * x


def test_param_str_backward(param_str_net):
    x = 7
    param_str_net.blobs["mul2"].diff[...] = x
    param_str_net.backward()
    for y in param_str_net.blobs["data"].diff.flat:
        assert y == 2 * 10 * x


def test_python_in_layer_type_list():
    assert "Python" in recaffe.layer_type_list()
    assert os.path.basename(__file__) == "test_python_layer.py"
