"""The multi-GPU launcher's parts that run without GPUs: the -gpu flag against
the machine's devices, the ranks' environment, and supervision of the ranks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from recaffe.errors import DistributedError
from recaffe.parallel.context import launched_by_mpi
from recaffe.parallel.launch import child_env, gpu_ids, supervise


def one_gpu() -> int:
    return 1


def two_gpus() -> int:
    return 2


def test_gpu_ids_of_the_flag():
    assert gpu_ids("", one_gpu) == []
    assert gpu_ids("0,1", two_gpus) == [0, 1]
    assert gpu_ids("all", two_gpus) == [0, 1]
    assert gpu_ids("1", two_gpus) == [1]


@pytest.mark.parametrize(("flag", "message"), [
    ("3", r"-gpu 3: no GPU 3 on this machine, which has 1 GPU\(s\) \(ids 0 to 0\); "
          r"run 'recaffe device_query'"),
    ("0,0", "lists a device twice"),
    ("a,b", "must be device ids like 0 or 0,1 or 'all'"),
    ("-1", "must list device ids >= 0"),
])
def test_bad_gpu_flags_say_what_to_change(flag, message):
    with pytest.raises(DistributedError, match=message):
        gpu_ids(flag, one_gpu)


def test_child_env_carries_rank_size_and_uid():
    env = child_env({"PATH": "/bin"}, 1, 2, b"\x01\xff", gpu=3)
    assert env["RECAFFE_RANK"] == "1" and env["RECAFFE_WORLD_SIZE"] == "2"
    assert env["RECAFFE_GPU"] == "3"
    assert env["RECAFFE_NCCL_UID"] == "01ff" and env["PATH"] == "/bin"


def test_launched_by_mpi_reads_open_mpi_and_mpich_variables(monkeypatch):
    for v in ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "PMI_SIZE", "PMI_RANK"):
        monkeypatch.delenv(v, raising=False)
    assert launched_by_mpi() is None
    monkeypatch.setenv("PMI_SIZE", "4")
    monkeypatch.setenv("PMI_RANK", "3")
    assert launched_by_mpi() == (3, 4)
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "1")
    assert launched_by_mpi() == (1, 2)


def _py(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code])


def test_supervise_returns_when_every_rank_succeeds():
    procs = [_py("pass"), _py("import time; time.sleep(0.2)")]
    assert supervise(procs, ["rank 0", "rank 1"]) == 0


def test_a_failing_rank_stops_the_others_and_is_named():
    stuck = _py("import time; time.sleep(600)")
    failing = _py("import sys, time; time.sleep(0.3); sys.exit(3)")
    t0 = time.monotonic()
    with pytest.raises(DistributedError,
                       match=r"rank 1 \(GPU 1\) exited with status 3; the other "
                             r"ranks were stopped"):
        supervise([stuck, failing], ["rank 0 (GPU 0)", "rank 1 (GPU 1)"], grace=5)
    assert time.monotonic() - t0 < 30
    assert stuck.returncode is not None  # stopped, not left running


def test_a_killed_rank_is_named_with_its_signal():
    victim = _py("import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    other = _py("import time; time.sleep(600)")
    with pytest.raises(DistributedError, match=r"rank 0 \(GPU 0\) was killed by "
                                               r"signal 9"):
        supervise([victim, other], ["rank 0 (GPU 0)", "rank 1 (GPU 1)"], grace=5)
    assert other.returncode is not None


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP here")
def test_sighup_to_the_launcher_reaches_every_rank(tmp_path):
    code = ("import signal, sys, time, pathlib\n"
            "p = pathlib.Path(sys.argv[1])\n"
            "signal.signal(signal.SIGHUP, lambda *a: (p.write_text('hup'), "
            "sys.exit(0)))\n"
            "p.with_suffix('.ready').write_text('')\n"
            "time.sleep(60)\n")
    marks = [tmp_path / f"r{r}.txt" for r in range(2)]
    procs = [subprocess.Popen([sys.executable, "-c", code, str(m)]) for m in marks]

    def send_when_ready():
        deadline = time.monotonic() + 30
        while not all(m.with_suffix(".ready").exists() for m in marks):
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGHUP)

    threading.Thread(target=send_when_ready, daemon=True).start()
    assert supervise(procs, ["rank 0", "rank 1"]) == 0
    assert [m.read_text() for m in marks] == ["hup", "hup"]


def test_device_query_reports_mpi():
    from importlib import util

    from recaffe.cli.device_query import parallel_lines

    line = parallel_lines()[0]
    if util.find_spec("mpi4py") is None:
        assert "pip install 'recaffe[mpi]'" in line
    else:
        assert line.startswith("MPI: mpi4py ") and "mpirun: " in line


def test_train_with_several_gpus_and_no_cupy_is_one_error_line(capsys, tmp_path):
    from importlib import util

    from recaffe.cli.__main__ import main

    if util.find_spec("cupy") is not None:
        pytest.skip("CuPy is installed: the flag is checked against real devices")
    assert main(["train", "-solver", str(tmp_path / "s.prototxt"), "-gpu", "0,1"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("recaffe: error: -gpu needs CuPy, which is not installed: pip "
                   "install 'recaffe[gpu]' (or leave out -gpu to train on the CPU)")
