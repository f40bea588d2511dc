"""``recaffe pycaffe script.py``: unmodified ``import caffe`` scripts run on recaffe."""

import subprocess
import sys
import textwrap

import pytest

import recaffe
from recaffe.cli import pycaffe as runner

SCRIPT = textwrap.dedent('''
    import sys
    import caffe
    import caffe.io
    from caffe import layers as L, params as P
    from caffe.proto import caffe_pb2
    import caffe.draw
    import caffe.net_spec
    from caffe.coord_map import crop

    out_dir = sys.argv[1]
    n = caffe.NetSpec()
    n.data = L.Input(shape=[dict(dim=[2, 3])])
    n.ip = L.InnerProduct(n.data, num_output=4, weight_filler=dict(type="xavier"))
    n.relu = L.ReLU(n.ip, in_place=True)
    path = out_dir + "/net.prototxt"
    with open(path, "w") as f:
        f.write(str(n.to_proto()))
    net = caffe.Net(path, caffe.TEST)
    out = net.forward(data=caffe.io.datum_to_array(
        caffe.io.array_to_datum(__import__("numpy").ones((2, 3, 1)))).reshape(2, 3))
    assert isinstance(caffe_pb2.NetParameter(), caffe.proto.caffe_pb2.NetParameter)
    with open(out_dir + "/result.txt", "w") as f:
        f.write(" ".join(sys.argv[1:]) + "\\n")
        f.write(str(sorted(out)) + "\\n")
        f.write(caffe.__name__ + "\\n")
''')


def test_runs_unmodified_script(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    rc = runner.main([str(script), str(tmp_path), "extra"])
    assert rc == 0
    lines = (tmp_path / "result.txt").read_text().splitlines()
    assert lines == [f"{tmp_path} extra", "['ip']", "recaffe"]


def test_aliases_removed_after_run(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    argv, path = sys.argv[:], sys.path[:]
    runner.main([str(script), str(tmp_path)])
    for name in runner.ALIASES:
        mod = sys.modules.get(name)
        assert mod is None or not mod.__name__.startswith("recaffe"), name
    assert sys.argv == argv and sys.path == path


def test_exit_codes(tmp_path):
    (tmp_path / "ok.py").write_text("import sys; sys.exit(0)\n")
    (tmp_path / "bad.py").write_text("import sys; sys.exit(3)\n")
    assert runner.main([str(tmp_path / "ok.py")]) == 0
    assert runner.main([str(tmp_path / "bad.py")]) == 3
    with pytest.raises(recaffe.errors.RecaffeError, match="no such script"):
        runner.main([str(tmp_path / "missing.py")])


def test_python_layer_module_next_to_script(tmp_path):
    (tmp_path / "mylayers.py").write_text(textwrap.dedent('''
        import caffe
        class Double(caffe.Layer):
            def setup(self, bottom, top):
                pass
            def reshape(self, bottom, top):
                top[0].reshape(*bottom[0].data.shape)
            def forward(self, bottom, top):
                top[0].data[...] = 2 * bottom[0].data
            def backward(self, top, propagate_down, bottom):
                bottom[0].diff[...] = 2 * top[0].diff
    '''))
    (tmp_path / "run.py").write_text(textwrap.dedent('''
        import sys
        import caffe
        from caffe import layers as L
        n = caffe.NetSpec()
        n.x = L.Input(shape=dict(dim=[3]))
        n.y = L.Python(n.x, module="mylayers", layer="Double")
        p = sys.argv[1] + "/py.prototxt"
        open(p, "w").write(str(n.to_proto()))
        net = caffe.Net(p, caffe.TRAIN)
        out = net.forward(x=[1.0, 2.0, 3.0])
        assert list(out["y"]) == [2.0, 4.0, 6.0], out
    '''))
    assert runner.main([str(tmp_path / "run.py"), str(tmp_path)]) == 0


def test_command_line(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([sys.executable, "-m", "recaffe.cli", "pycaffe", str(script),
                           str(tmp_path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "result.txt").read_text().splitlines()[-1] == "recaffe"
