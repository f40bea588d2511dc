"""Data-parallel training under ``mpirun -n 2`` (Open MPI from the ``mpi`` extra).

The heart: 2 ranks x batch B/2 end with the weights of 1 process x batch B
after 20 iterations, for an MLP over HDF5Data (SGD with momentum, weight decay,
a step lr policy and gradient clipping; Adam with iter_size 2), the
binary-addition RNN (Adam) and an MLP over an LMDB Data layer (Nesterov, inv
policy), and the HDF5 MLP with AdaGrad (L1 decay, multistep), RMSProp (poly),
AdaDelta (sigmoid) and SGD (exp, iter_size 3, clipping); a 2-rank run
resumed from a snapshot ends where an uninterrupted one
does. Then the faults: an error, a killed rank or a hung rank stops every rank
in bounded time naming the rank; ranks with different solvers fail at start;
signals snapshot and stop every rank; bad input is one error line per rank.

Every launch runs with a timeout, so no test can hang.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

import dist_cases  # noqa: E402

from recaffe.io.prototxt import to_text  # noqa: E402
from recaffe.parallel.launch import find_mpirun  # noqa: E402


def _mpi_reason() -> str | None:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py is not installed (pip install 'recaffe[mpi]')"
    if find_mpirun() is None:
        return "no mpirun found (pip install 'recaffe[mpi]' brings Open MPI's)"
    return None


pytestmark = pytest.mark.skipif(_mpi_reason() is not None,
                                reason=_mpi_reason() or "")

LAUNCH_TIMEOUT = 180


def _env(**extra) -> dict:
    env = dict(os.environ)
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")
    path = [str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if "PYTHONPATH" in extra:
        path.insert(0, extra.pop("PYTHONPATH"))
    env["PYTHONPATH"] = os.pathsep.join(path)
    env.update(extra)
    return env


def _cmd(n: int, *args: str) -> list[str]:
    return [find_mpirun(), "-n", str(n), "--oversubscribe", *args]


def _train(n: int, *flags: str) -> list[str]:
    return _cmd(n, sys.executable, "-m", "recaffe", "train", *flags)


def _run(cmd, cwd, timeout=LAUNCH_TIMEOUT, **env):
    return subprocess.run(cmd, cwd=cwd, env=_env(**env), capture_output=True,
                          text=True, errors="replace", timeout=timeout)


def _errors(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("recaffe: error:")]


#: The issue's cases, then the other solver types and lr policies.
CASES = ["sgd", "adam", "rnn", "lmdb", "adagrad", "rmsprop", "adadelta", "exp"]


@pytest.fixture(scope="module")
def two_rank_runs(tmp_path_factory):
    """One ``mpirun -n 2`` launch training every case; the weights by case."""
    base = tmp_path_factory.mktemp("dist")
    out = base / "out"
    out.mkdir()
    proc = _run(_cmd(2, sys.executable, str(HERE / "dist_cases.py"),
                     str(base / "work"), str(out), *CASES), cwd=base)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = {}
    for case in CASES:
        ranks = [np.load(out / f"{case}.n2.rank{r}.npz") for r in range(2)]
        runs[case] = [[z[f"arr_{i}"] for i in range(len(z.files))] for z in ranks]
    return base, runs


@pytest.mark.parametrize("case", CASES)
def test_two_ranks_with_half_batches_equal_one_process(two_rank_runs, case,
                                                        tmp_path):
    _, runs = two_rank_runs
    ref = dist_cases.run_case(case, str(tmp_path / case), dist_cases.BATCH)
    rank0, rank1 = runs[case]
    assert len(rank0) == len(ref) > 0
    for r0, r1, want in zip(rank0, rank1, ref, strict=True):
        np.testing.assert_array_equal(r0, r1)  # every rank applies the same update
        np.testing.assert_allclose(r0, want, rtol=1e-5, atol=2e-6)
    # and training moved the weights: the comparison is not of initial values
    init = dist_cases.run_case(case, str(tmp_path / case), dist_cases.BATCH, iters=0)
    assert max(float(np.abs(a - b).max()) for a, b in zip(ref, init, strict=True)) \
        > 1e-2


def _solver_file(tmp_path: Path, case: str, batch: int, name: str, **extra) -> Path:
    param = dist_cases.solver_param(case, str(tmp_path / case), batch, **extra)
    path = tmp_path / name
    path.write_text(to_text(param))
    return path


def test_resumed_two_rank_run_equals_an_uninterrupted_one(two_rank_runs, tmp_path):
    import recaffe as caffe

    _, runs = two_rank_runs
    prefix = tmp_path / "snap" / "s"
    prefix.parent.mkdir()
    first = _solver_file(tmp_path, "sgd", 4, "first.prototxt", max_iter=10,
                         snapshot=10, snapshot_prefix=str(prefix))
    proc = _run(_train(2, "-solver", str(first)), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = Path(f"{prefix}_iter_10.solverstate")
    assert state.exists()
    second = _solver_file(tmp_path, "sgd", 4, "second.prototxt", max_iter=20,
                          snapshot=10, snapshot_prefix=str(prefix))
    proc = _run(_train(2, "-solver", str(second), "-snapshot", str(state)),
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # rank 0 alone logs
    assert proc.stderr.count("Restoring previous solver status") == 1
    net = caffe.Net(str(tmp_path / "sgd" / "sgd_b4.prototxt"), caffe.TEST,
                    weights=f"{prefix}_iter_20.caffemodel")
    got = [b.data for name in net.params for b in net.params[name]]
    for g, want in zip(got, runs["sgd"][0], strict=True):
        np.testing.assert_allclose(g, want, rtol=1e-5, atol=2e-6)


FAULTY = '''
import os, signal, time
import recaffe as caffe

class Faulty(caffe.Layer):
    """Identity; on rank 1 at forward number ``at``: raise, die or hang."""
    def setup(self, bottom, top):
        self.mode, at = self.param_str.split(":")
        self.at, self.n = int(at), 0
    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)
    def forward(self, bottom, top):
        self.n += 1
        if caffe.solver_rank() == 1 and self.n == self.at:
            if self.mode == "raise":
                raise ValueError("faulty layer gave up")
            if self.mode == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if self.mode == "hang":
                time.sleep(1e6)
        top[0].data[...] = bottom[0].data
    def backward(self, top, propagate_down, bottom):
        bottom[0].diff[...] = top[0].diff
'''


def _faulty_solver(tmp_path: Path, mode: str) -> Path:
    (tmp_path / "faulty.py").write_text(FAULTY)
    base = _solver_file(tmp_path, "sgd", 4, "base.prototxt")
    net_path = tmp_path / "sgd" / "sgd_b4.prototxt"
    text = net_path.read_text().replace(
        'layer { name: "relu1"',
        'layer { name: "f" type: "Python" bottom: "ip1" top: "ip1" python_param { '
        f'module: "faulty" layer: "Faulty" param_str: "{mode}:3" }} }}\n'
        'layer { name: "relu1"')
    faulty_net = tmp_path / f"net_{mode}.prototxt"
    faulty_net.write_text(text)
    solver = tmp_path / f"s_{mode}.prototxt"
    solver.write_text(base.read_text().replace(str(net_path), str(faulty_net))
                      .replace("max_iter: 20", "max_iter: 100000"))
    return solver


@pytest.mark.parametrize(("mode", "expect"), [
    ("raise", "recaffe: error: rank 1: ValueError: faulty layer gave up"),
    ("kill", "rank 1"),
    ("hang", "recaffe: error: rank 0 of 2: an allreduce did not complete within 8 s"),
])
def test_a_failing_rank_stops_every_rank_in_bounded_time(tmp_path, mode, expect):
    solver = _faulty_solver(tmp_path, mode)
    t0 = time.monotonic()
    proc = _run(_train(2, "-solver", str(solver)), cwd=tmp_path, timeout=120,
                PYTHONPATH=str(tmp_path), RECAFFE_DIST_TIMEOUT="8")
    took = time.monotonic() - t0
    assert proc.returncode != 0
    assert expect in proc.stderr, proc.stderr[-3000:]
    assert took < 60
    if mode == "kill":
        assert "signal 9" in proc.stderr


def test_ranks_started_with_different_solvers_fail_at_start(tmp_path):
    for r, lr in enumerate(("0.1", "0.2")):
        p = _solver_file(tmp_path, "sgd", 4, f"s{r}.prototxt")
        p.write_text(p.read_text().replace("base_lr: 0.2", f"base_lr: {lr}"))
    cmd = _cmd(2, "sh", "-c", f'exec "{sys.executable}" -m recaffe train '
               f'-solver "{tmp_path}/s$OMPI_COMM_WORLD_RANK.prototxt"')
    proc = _run(cmd, cwd=tmp_path, timeout=120)
    assert proc.returncode != 0
    errs = _errors(proc.stderr)
    assert errs, proc.stderr[-3000:]
    assert all("the ranks were started with different solver parameters "
               "(rank(s) 1) than rank 0" in e for e in errs), errs


def test_an_lmdb_with_fewer_records_than_ranks_is_one_error_line(tmp_path):
    pytest.importorskip("lmdb")
    from recaffe.io.db import LMDBWriter
    from recaffe.proto import caffe_pb2

    db = tmp_path / "one_lmdb"
    with LMDBWriter(str(db)) as w:
        d = caffe_pb2.Datum(channels=1, height=1, width=1, label=0)
        d.float_data.append(1.0)
        w.put(b"0", d.SerializeToString())
    net = tmp_path / "net.prototxt"
    net.write_text(f'layer {{ name: "d" type: "Data" top: "data" top: "label" '
                   f'data_param {{ source: "{db}" batch_size: 1 backend: LMDB }} }}\n'
                   'layer { name: "ip" type: "InnerProduct" bottom: "data" '
                   'top: "ip" inner_product_param { num_output: 1 } }\n'
                   'layer { name: "l" type: "EuclideanLoss" bottom: "ip" '
                   'bottom: "label" top: "l" }\n')
    solver = tmp_path / "s.prototxt"
    solver.write_text(f'net: "{net}" base_lr: 0.1 lr_policy: "fixed" max_iter: 2\n')
    proc = _run(_train(2, "-solver", str(solver)), cwd=tmp_path, timeout=120)
    assert proc.returncode != 0
    errs = _errors(proc.stderr)
    assert errs, proc.stderr[-3000:]
    for e in errs:
        assert "holds 1 record(s), fewer than the 2 data-parallel ranks; use fewer " \
               "ranks or more data" in e


def _rank_pids(marker: str) -> list[int]:
    """Pids of this test's rank processes (their command line holds ``marker``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmd and "-m recaffe train" in cmd:
            pids.append(int(entry.name))
    return sorted(pids)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find ranks")
def test_signals_snapshot_and_stop_every_rank(tmp_path):
    prefix = tmp_path / "sig"
    solver = _solver_file(tmp_path, "sgd", 4, "long.prototxt", max_iter=10**7,
                          display=200, snapshot_prefix=str(prefix),
                          snapshot_after_train=True)
    log = tmp_path / "log.txt"
    with open(log, "w") as fh:
        job = subprocess.Popen(_train(2, "-solver", str(solver)), cwd=tmp_path,
                               env=_env(), stdout=fh, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90

        def wait_for(cond, what):
            while not cond():
                assert job.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, f"timed out waiting for {what}"
                time.sleep(0.1)

        wait_for(lambda: "Iteration 200 " in log.read_text(), "training")
        ranks = [p for p in _rank_pids(str(solver)) if p != job.pid]  # not mpirun
        assert len(ranks) == 2
        # SIGHUP to one rank only: rank 0 snapshots, training goes on.
        os.kill(ranks[-1], signal.SIGHUP)
        wait_for(lambda: list(tmp_path.glob("sig_iter_*.solverstate")), "snapshot")
        # mpirun passes SIGUSR2 on to the ranks, which treat it as SIGINT: stop.
        job.send_signal(signal.SIGUSR2)
        rc = job.wait(timeout=60)
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
    text = log.read_text()
    assert rc == 0, text[-3000:]
    assert "Optimization stopped early." in text
    states = sorted(tmp_path.glob("sig_iter_*.solverstate"))
    assert len(states) == 2  # the SIGHUP snapshot and the one at the stop


def test_mpirun_without_mpi4py_is_one_error_line_per_rank(tmp_path):
    fake = tmp_path / "nompi" / "mpi4py"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named mpi4py')\n")
    solver = _solver_file(tmp_path, "sgd", 4, "s.prototxt")
    for r in range(2):
        proc = subprocess.run(
            [sys.executable, "-m", "recaffe", "train", "-solver", str(solver)],
            cwd=tmp_path, capture_output=True, text=True, timeout=120,
            env=_env(PYTHONPATH=str(fake.parent), OMPI_COMM_WORLD_SIZE="2",
                     OMPI_COMM_WORLD_RANK=str(r)))
        assert proc.returncode == 1
        errs = _errors(proc.stderr)
        assert len(errs) == 1 and proc.stderr.strip() == errs[0]
        assert errs[0].startswith(f"recaffe: error: rank {r} of 2: started by an "
                                  "MPI launcher, but data-parallel training over "
                                  "MPI needs mpi4py")
        assert "pip install 'recaffe[mpi]'" in errs[0]


def test_an_exception_in_a_pycaffe_script_stops_every_rank(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(
        "import numpy as np\n"
        "import recaffe as caffe\n"
        "ctx = caffe.parallel.init()\n"
        "if caffe.solver_rank() == 1:\n"
        "    raise RuntimeError('script failed on purpose')\n"
        "ctx.comm.allreduce(np.zeros(4, np.float32))  # rank 0 would wait here\n")
    t0 = time.monotonic()
    proc = _run(_cmd(2, sys.executable, str(script)), cwd=tmp_path, timeout=120)
    assert proc.returncode != 0
    assert "rank 1 of 2 failed:" in proc.stderr
    assert "RuntimeError: script failed on purpose" in proc.stderr
    assert time.monotonic() - t0 < 60
