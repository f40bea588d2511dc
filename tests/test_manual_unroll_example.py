"""examples/binary_addition/manual_unroll.py: the talk's hand-unrolled RNN trains."""

import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def manual_unroll():
    sys.path.insert(0, str(ROOT / "examples" / "binary_addition"))
    try:
        import manual_unroll as module
    finally:
        sys.path.pop(0)
    return module


def test_net_shares_parameters_through_time(manual_unroll):
    net = manual_unroll.binary_addition_train(4, 5)
    names = [lp.name for lp in net.layer]
    assert names[:2] == ["HDF5", "X"]
    for stem in ("zX", "zH", "z", "a", "out"):
        assert all(f"{stem}{t}" in names for t in range(1, 5))
    wx = [lp for lp in net.layer if lp.name.startswith("zX")]
    assert {tuple(p.name for p in lp.param) for lp in wx} == {("WX", "bX")}
    x = net.layer[1]
    assert list(x.slice_param.slice_point) == [2, 4, 6] and x.slice_param.axis == 3


def test_make_data_is_binary_addition(manual_unroll):
    data, label = manual_unroll.make_data(16, 5, seed=3)
    for d, lab in zip(data, label, strict=True):
        a = sum(int(d[0, 0, 2 * t]) << t for t in range(5))
        b = sum(int(d[0, 0, 2 * t + 1]) << t for t in range(5))
        s = sum(int(lab[t]) << t for t in range(5))
        assert a + b == s


def test_trains_to_exact_sums(manual_unroll, tmp_path, capsys):
    rc = manual_unroll.main(["--num-steps", "5", "--iters", "4000", "--seed", "1701",
                             "--workdir", str(tmp_path)])
    assert rc == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    accuracy = float(line.split("bit accuracy")[1])
    assert accuracy >= 0.95, line
