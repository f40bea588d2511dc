"""Training survives a kill: ``recaffe train`` is SIGKILLed at random moments,
resumed each time from the latest ``.solverstate``, and ends with weights that
are bitwise equal to those of an uninterrupted run with the same seed.

Every file a killed run leaves behind is complete (snapshots are written
atomically): each ``.caffemodel`` / ``.solverstate`` parses, and a state's
``learned_net`` exists.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from recaffe.proto import caffe_pb2

REPO = Path(__file__).resolve().parents[2]
MAX_ITER = 300
SNAPSHOT = 20

NET = """name: "durable"
layer { name: "d" type: "DummyData" top: "x" top: "t"
  dummy_data_param {
    shape { dim: 64 dim: 128 } shape { dim: 64 dim: 8 }
    data_filler { type: "constant" value: 0.3 }
    data_filler { type: "constant" value: 0.5 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "x" top: "h"
  inner_product_param { num_output: 256
    weight_filler { type: "gaussian" std: 0.2 } bias_filler { type: "uniform" } } }
layer { name: "act" type: "TanH" bottom: "h" top: "h" }
layer { name: "ip2" type: "InnerProduct" bottom: "h" top: "y"
  inner_product_param { num_output: 8 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }
"""

SOLVER = f"""net: "net.prototxt"
base_lr: 0.002
momentum: 0.9
weight_decay: 0.001
lr_policy: "multistep"
gamma: 0.5
stepvalue: 100
stepvalue: 200
max_iter: {MAX_ITER}
snapshot: {SNAPSHOT}
snapshot_prefix: "snap"
display: 50
random_seed: 1234
"""


def _setup(d: Path) -> None:
    d.mkdir(parents=True, exist_ok=True)
    (d / "net.prototxt").write_text(NET)
    (d / "solver.prototxt").write_text(SOLVER)


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    # One BLAS thread: the same sums in the same order in every run.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    return env


def _start(d: Path, resume: str | None) -> subprocess.Popen:
    args = [sys.executable, "-m", "recaffe", "train", "-solver", "solver.prototxt"]
    if resume:
        args += ["-snapshot", resume]
    log = open(d / "train.log", "ab")  # noqa: SIM115 - closed after the child starts
    try:
        return subprocess.Popen(args, cwd=d, env=_env(), stdout=log, stderr=log)
    finally:
        log.close()


def _iter_of(path: Path) -> int:
    return int(re.search(r"_iter_(\d+)\.", path.name).group(1))


def _latest_state(d: Path) -> Path | None:
    states = sorted(d.glob("snap_iter_*.solverstate"), key=_iter_of)
    return states[-1] if states else None


def _check_files_complete(d: Path) -> None:
    for path in d.glob("snap_iter_*.caffemodel"):
        p = caffe_pb2.NetParameter()
        p.ParseFromString(path.read_bytes())
        assert [lp.name for lp in p.layer if lp.blobs] == ["ip1", "ip2"], path
    for path in d.glob("snap_iter_*.solverstate"):
        s = caffe_pb2.SolverState()
        s.ParseFromString(path.read_bytes())
        assert s.iter == _iter_of(path) and len(s.history) == 4, path
        assert (d / os.path.basename(s.learned_net)).exists(), path


def _final_arrays(d: Path) -> tuple[bytes, list[bytes]]:
    model = (d / f"snap_iter_{MAX_ITER}.caffemodel").read_bytes()
    s = caffe_pb2.SolverState()
    s.ParseFromString((d / f"snap_iter_{MAX_ITER}.solverstate").read_bytes())
    return model, [b.SerializeToString() for b in s.history]


def test_sigkill_and_resume_is_bitwise_equal(tmp_path):
    rnd = random.Random(20240517)
    ref = tmp_path / "reference"
    _setup(ref)
    t0 = time.perf_counter()
    res = _start(ref, None)
    first_snapshot = None
    while res.poll() is None and time.perf_counter() - t0 < 60:
        if first_snapshot is None and _latest_state(ref) is not None:
            first_snapshot = time.perf_counter()
        time.sleep(0.002)
    assert res.wait(timeout=60) == 0, (ref / "train.log").read_text()[-3000:]
    end = time.perf_counter()
    # Seconds per iteration once training runs (interpreter start excluded).
    per_iter = (end - (first_snapshot or t0)) / (MAX_ITER - SNAPSHOT)

    run = tmp_path / "killed"
    _setup(run)
    kills = 0
    for _attempt in range(12):
        state = _latest_state(run)
        if state is not None and _iter_of(state) >= MAX_ITER:
            break
        proc = _start(run, state.name if state else None)
        if kills < 4:
            # Kill somewhere inside the run: once training has made progress
            # (a new snapshot appeared), at a random point of what remains.
            start_iter = _iter_of(state) if state else 0
            deadline = time.perf_counter() + 60
            while proc.poll() is None and time.perf_counter() < deadline:
                new = _latest_state(run)
                if new is not None and _iter_of(new) > start_iter:
                    break
                time.sleep(0.002)
            # Up to ~2.5 snapshot intervals past it: kills land before,
            # during and between snapshot writes.
            time.sleep(rnd.uniform(0.0, 2.5 * SNAPSHOT) * per_iter)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait(timeout=60)
        else:
            assert proc.wait(timeout=60) == 0, (run / "train.log").read_text()[-3000:]
        _check_files_complete(run)
    assert kills >= 3, f"only {kills} kills landed inside a run"
    final = _latest_state(run)
    assert final is not None and _iter_of(final) == MAX_ITER
    assert not list(run.glob(f"snap_iter_{MAX_ITER + SNAPSHOT}*"))

    ref_model, ref_history = _final_arrays(ref)
    got_model, got_history = _final_arrays(run)
    assert got_model == ref_model
    assert got_history == ref_history
