"""benchmarks.common.alternate: jobs in turn, several rounds, medians."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def common(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    sys.modules.pop("benchmarks.common", None)
    from benchmarks import common as mod  # noqa: PLC0415

    return mod


def test_alternate_runs_jobs_in_turn_and_takes_medians(common, monkeypatch):
    calls = []
    times = {"a": iter([3.0, 1.0, 2.0]), "b": iter([5.0, 4.0, 6.0])}
    rss = {"a": iter([10.0, 30.0, 20.0]), "b": iter([7.0, 7.0, 7.0])}

    def fake(module, func, kwargs, threads):
        calls.append(kwargs["name"])
        name = kwargs["name"]
        return {"s": next(times[name]), "rss_mb": next(rss[name]), "loss": 1.5}

    monkeypatch.setattr(common, "run_worker", fake)
    out = common.alternate({"a": ("m", "f", {"name": "a"}),
                            "b": ("m", "f", {"name": "b"})}, threads=2, rounds=3)
    # in turn, not all of one job's rounds first
    assert calls == ["a", "b", "a", "b", "a", "b"]
    assert out["a"]["s"] == 2.0 and out["a"]["s_rounds"] == [3.0, 1.0, 2.0]
    assert out["b"]["s"] == 5.0
    assert out["a"]["rss_mb"] == 30.0  # the largest peak
    assert out["a"]["loss"] == 1.5


def test_alternate_keeps_a_failed_round(common, monkeypatch):
    results = iter([{"s": 1.0}, {"error": "timeout"}])
    monkeypatch.setattr(common, "run_worker", lambda *a: next(results))
    out = common.alternate({"a": ("m", "f", {})}, threads=1, rounds=2)
    assert out == {"a": {"error": "timeout"}}


def test_one_round_is_one_run(common, monkeypatch):
    calls = []

    def fake(*a):
        calls.append(a)
        return {"s": 0.25}

    monkeypatch.setattr(common, "run_worker", fake)
    out = common.alternate({"a": ("m", "f", {})}, threads=1)
    assert len(calls) == 1 and out["a"]["s"] == 0.25 and out["a"]["s_rounds"] == [0.25]


def test_lstm_rows_without_torch(common, monkeypatch):
    ran = []

    def fake(module, func, kwargs, threads):
        ran.append((func, kwargs.get("impl"), kwargs.get("share")))
        return {"s": 1.0}

    monkeypatch.setattr(common, "run_worker", fake)
    monkeypatch.setattr(common, "torch_available", lambda: False)
    out = common.lstm_rows("lstm", "PyTorch nn.LSTM", "torch_train", "recaffe_train",
                           {"T": 2}, threads=1, rounds=2)
    assert out["PyTorch nn.LSTM"] == {"error": "torch not installed"}
    assert ran == [("recaffe_train", None, None), ("recaffe_train", "unroll", None),
                   ("recaffe_train", "unroll", True)] * 2
    assert list(out) == ["PyTorch nn.LSTM", "recaffe LSTM layer",
                         "recaffe unroll-built LSTM", common.SHARED]


def test_lstm_rows_extra_row_runs_in_turn(common, monkeypatch):
    ran = []

    def fake(module, func, kwargs, threads):
        ran.append((func, kwargs.get("impl"), kwargs.get("onednn")))
        return {"s": 1.0}

    monkeypatch.setattr(common, "run_worker", fake)
    monkeypatch.setattr(common, "torch_available", lambda: False)
    extra = {common.OWN_LOOP: {"onednn": False}}
    out = common.lstm_rows("infer", "PyTorch", "torch_infer", "recaffe_infer",
                           {"T": 2}, threads=1, rounds=2, extra=extra)
    assert list(out)[-1] == common.OWN_LOOP
    assert ran == [("recaffe_infer", None, None), ("recaffe_infer", "unroll", None),
                   ("recaffe_infer", "unroll", None),
                   ("recaffe_infer", None, False)] * 2


def test_own_loop_row_only_where_the_primitives_run(common, monkeypatch):
    from recaffe.backend import onednn  # noqa: PLC0415

    monkeypatch.setattr(onednn, "available", lambda: True)
    assert common.own_loop_row(1) is None  # N=1: the layer runs its own loop
    assert common.own_loop_row(64) == {common.OWN_LOOP: {"onednn": False}}
    monkeypatch.setattr(onednn, "available", lambda: False)
    assert common.own_loop_row(64) is None
