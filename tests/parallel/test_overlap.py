"""Gradient buckets start their allreduce during the backward pass.

One process plays rank 0 of two with a recording communicator whose
"allreduce" doubles the bucket (as if the other rank had the same gradient),
so the averaged gradient is the local one and training must match a plain
single-process solver exactly. The recorder notes how many backward steps had
run when each bucket started, and a copy of what it was given; the copy must
equal the final gradient (nothing started before its parameters were final).
"""

from __future__ import annotations

import numpy as np
import pytest

from recaffe.io.prototxt import parse_prototxt
from recaffe.parallel import DataParallel
from recaffe.parallel.comm import Communicator, Request
from recaffe.parallel.context import Context
from recaffe.proto import caffe_pb2
from recaffe.solvers import get_solver

_DATA = """
layer { name: "data" type: "DummyData" top: "x0" top: "x1" top: "x2" top: "y"
  dummy_data_param {
    shape { dim: 4 dim: 5 } shape { dim: 4 dim: 5 } shape { dim: 4 dim: 5 }
    shape { dim: 4 dim: 3 }
    data_filler { type: "gaussian" std: 1 } data_filler { type: "gaussian" std: 1 }
    data_filler { type: "gaussian" std: 1 } data_filler { type: "gaussian" std: 1 }
  } }
"""


def _ip(name: str, bottom: str, top: str, n: int, shared: bool = False) -> str:
    params = 'param { name: "W" } param { name: "b" }' if shared else ""
    return (f'layer {{ name: "{name}" type: "InnerProduct" bottom: "{bottom}" '
            f'top: "{top}" {params} inner_product_param {{ num_output: {n} '
            'weight_filler { type: "gaussian" std: 0.3 } '
            'bias_filler { type: "gaussian" std: 0.1 } } }\n')


FEED_FORWARD = (_DATA + _ip("ip1", "x0", "h1", 8)
                + 'layer { name: "r1" type: "ReLU" bottom: "h1" top: "h1" }\n'
                + _ip("ip2", "h1", "h2", 8)
                + 'layer { name: "r2" type: "TanH" bottom: "h2" top: "h2" }\n'
                + _ip("ip3", "h2", "out", 3)
                + 'layer { name: "loss" type: "EuclideanLoss" bottom: "out" '
                  'bottom: "y" top: "loss" }\n')

# Three steps of one unrolled cell: ip_t0..ip_t2 share W and b.
UNROLLED = (_DATA
            + "".join(_ip(f"ip_t{t}", f"x{t}", f"a{t}", 6, shared=True)
                      + f'layer {{ name: "th{t}" type: "TanH" bottom: "a{t}" '
                        f'top: "h{t}" }}\n' for t in range(3))
            + 'layer { name: "sum" type: "Eltwise" bottom: "h0" bottom: "h1" '
              'bottom: "h2" top: "hs" }\n'
            + _ip("ip_out", "hs", "out", 3)
            + 'layer { name: "loss" type: "EuclideanLoss" bottom: "out" '
              'bottom: "y" top: "loss" }\n')


class _Req(Request):
    def __init__(self, log):
        self.log = log

    def wait(self) -> None:
        pass

    def test(self) -> bool:
        self.log.append("test")
        return True


class RecordingComm(Communicator):
    """Rank 0 of 2; the other rank's gradient equals this one's."""

    name = "recording"
    rank, size = 0, 2

    def __init__(self):
        self.steps = 0          # backward steps run so far (set by the test)
        self.ran: set = set()   # layers whose backward ran (plain path)
        self.starts: list = []  # (steps, layers run, copy of the bucket)
        self.log: list = []

    def iallreduce(self, arr) -> Request:
        self.starts.append((self.steps, set(self.ran), np.array(arr)))
        arr *= 2
        return _Req(self.log)

    def bcast(self, arr, root: int = 0) -> None:
        pass

    def allgather_bytes(self, data: bytes) -> list[bytes]:
        return [bytes(data)] * 2


def _solver(net_text: str, iter_size: int = 1):
    text = ('base_lr: 0.05 momentum: 0.9 lr_policy: "fixed" max_iter: 100 '
            f'random_seed: 3 display: 0 iter_size: {iter_size}')
    p = parse_prototxt(text, caffe_pb2.SolverParameter)
    p.net_param.CopyFrom(parse_prototxt(net_text, caffe_pb2.NetParameter))
    return get_solver(p)


def _counting(comm, f, tag=None):
    def run(*args):
        f(*args)
        comm.steps += 1
        if tag is not None:
            comm.ran.add(tag)
    return run


def _instrument(solver, comm) -> int:
    """Count backward steps (plan steps or layers); the steps of one pass."""
    net = solver.net
    plan = net.plan
    if plan is not None:
        plan.bwd = [(_counting(comm, f), t, pd, b) for f, t, pd, b in plan.bwd]
        return len(plan.bwd)
    for name, layer in zip(net.layer_names, net.layers_list, strict=True):
        layer.Backward = _counting(comm, layer.Backward, name)
    return sum(1 for need in net.layer_need_backward if need)


def _run(net_text, iter_size=1, plan=True, monkeypatch=None, iters=3):
    """Train ``iters`` iterations data-parallel with the recorder and alone;
    returns (comm, data-parallel solver, steps per pass, final local grads of
    the last iteration); ``plan=False`` turns the plan off through
    ``monkeypatch``."""
    if not plan:
        monkeypatch.setenv("RECAFFE_PLAN", "0")
    comm = RecordingComm()
    dist = _solver(net_text, iter_size)
    dp = DataParallel(dist, Context(rank=0, size=2, comm=comm), bucket_mb=1e-6)
    dist.step(1)
    assert (dist.net.plan is not None) == plan
    per_pass = _instrument(dist, comm)
    grads = []
    reduce = dp.after_backward

    def after_backward(loss):
        grads[:] = [np.array(b.diff) for b in dist.net.learnable_params]
        return reduce(loss)

    dp.after_backward = after_backward
    for _ in range(iters - 1):
        comm.starts.clear()
        comm.steps = 0
        comm.ran.clear()
        dist.step(1)
    alone = _solver(net_text, iter_size)  # same seed: same weights and data
    alone.step(iters)
    for a, b in zip(dist.net.learnable_params, alone.net.learnable_params,
                    strict=True):
        np.testing.assert_array_equal(a.data, b.data)
    return comm, dp, per_pass, grads


def _check_final(comm, dp, grads):
    """Every bucket's copy at start time equals the final local gradient."""
    red = dp.reducer
    assert len(comm.starts) == len(red.buckets)
    for (_, _, copy), (start, _, members) in zip(comm.starts, red.buckets,
                                                  strict=True):
        for i, off in members:
            np.testing.assert_array_equal(
                copy[off - start:off - start + grads[i].size], grads[i].reshape(-1))


@pytest.mark.parametrize("plan", [True, False])
def test_feed_forward_buckets_start_during_backward(plan, monkeypatch):
    comm, dp, per_pass, grads = _run(FEED_FORWARD, plan=plan, monkeypatch=monkeypatch)
    _check_final(comm, dp, grads)
    steps = [s for s, _, _ in comm.starts]
    # ip3's bias and weights (the first buckets) start early, ip2's next, in
    # bucket order; the last bucket (loss and signals) after backward.
    assert steps == sorted(steps)
    assert steps[0] < per_pass // 2
    assert all(s < per_pass - 1 for s in steps[:4])
    assert steps[-1] == comm.steps == per_pass
    assert "test" in comm.log  # started transfers are polled at later steps
    assert dp.reducer.early == len(dp.reducer.buckets) - 1


@pytest.mark.parametrize("plan", [True, False])
def test_shared_weights_start_after_last_sharing_layer(plan, monkeypatch):
    comm, dp, per_pass, grads = _run(UNROLLED, plan=plan, monkeypatch=monkeypatch)
    _check_final(comm, dp, grads)
    net = dp.solver.net
    shared = {id(net.layer_by_name("ip_t0").blobs[j].diff) for j in (0, 1)}
    red = dp.reducer
    first_shared = min(k for k, (_, _, members) in enumerate(red.buckets)
                       if any(id(red.params[i].diff) in shared
                              for i, _ in members))
    assert first_shared >= 2  # ip_out's bias and weights come first
    assert comm.starts[0][0] < per_pass
    assert comm.starts[first_shared - 1][0] < per_pass - 1
    if not plan:
        for k, (_, ran, _) in enumerate(comm.starts):
            assert ("ip_t0" in ran) == (k >= first_shared)


def test_iter_size_starts_nothing_in_first_backward():
    comm, dp, per_pass, grads = _run(FEED_FORWARD, iter_size=2)
    _check_final(comm, dp, grads)
    steps = [s for s, _, _ in comm.starts]
    assert min(steps) > per_pass  # all in the second (last) backward pass
    assert steps[0] < 2 * per_pass


def test_overlap_switch_off(monkeypatch):
    monkeypatch.setenv("RECAFFE_DIST_OVERLAP", "0")
    comm, dp, per_pass, _ = _run(FEED_FORWARD)
    assert dp.overlap is None
    assert [s for s, _, _ in comm.starts] == [per_pass] * len(dp.reducer.buckets)
    assert comm.steps == per_pass
    assert dp.reducer.early == 0


def _unrolled_lstm_text(T=5, N=4, V=3, H=6) -> str:
    from recaffe import layers as L  # noqa: PLC0415
    from recaffe.net_spec import NetSpec  # noqa: PLC0415
    from recaffe.recurrent.cells.lstm import lstm  # noqa: PLC0415

    ns = NetSpec()
    ns.x, ns.y = L.DummyData(shape=[dict(dim=[T, N, V]), dict(dim=[T, N, V])],
                             data_filler=[dict(type="gaussian", std=1)] * 2, ntop=2)
    ns.cont = L.DummyData(shape=dict(dim=[T, N]),
                          data_filler=dict(type="constant", value=1))
    ns.h = lstm(ns.x, ns.cont, T, H, N=N, name="lstm1", ns=ns).output
    ns.out = L.InnerProduct(ns.h, axis=2, num_output=V,
                            weight_filler=dict(type="gaussian", std=0.3))
    ns.loss = L.EuclideanLoss(ns.out, ns.y)
    return str(ns.to_proto())


@pytest.mark.parametrize("iter_size", [1, 2])
def test_an_unrolled_lstm_run_as_one_step(iter_size, monkeypatch):
    """With sharing on, the recurrence's backward is one plan step that
    writes all three LSTM parameters' gradients: their buckets start after
    it, never before, and training matches a single process."""
    monkeypatch.setenv("RECAFFE_SHARE_BUFFERS", "1")
    comm, dp, per_pass, grads = _run(_unrolled_lstm_text(), iter_size=iter_size)
    assert dp.solver.net.plan.sequences  # (the recurrence is one step)
    _check_final(comm, dp, grads)
    assert [s for s, _, _ in comm.starts][-1] == iter_size * per_pass
