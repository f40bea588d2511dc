"""examples/char_rnn: trains at tiny settings, learns, samples, resumes; the
LSTM-layer and unrolled nets compute the same losses with carried state."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "char_rnn"
TINY = ["--corpus-chars", "30000", "--hidden", "48", "--embed", "16", "--steps", "20",
        "--batch", "8", "--iters", "120", "--lr", "0.01", "--test-interval", "60",
        "--display", "10", "--snapshot", "60", "--quiet"]


def run(script: str, *args: str, cwd: Path) -> str:
    proc = subprocess.run([sys.executable, str(EXAMPLE / script), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def train_losses(log: Path) -> list[float]:
    return [float(m.group(1)) for m in re.finditer(
        r"Iteration \d+ \([^)]*\), loss = ([0-9.eE+-]+)", log.read_text())]


def held_out_bpcs(log: Path) -> list[float]:
    return [float(v) for v in re.findall(r"Test net output #0: bpc = ([0-9.eE+-]+)",
                                         log.read_text())]


@pytest.mark.parametrize("impl,layers", [("layer", 1), ("unroll", 2)])
def test_char_rnn_learns_and_samples(tmp_path, impl, layers):
    out = tmp_path / "out"
    stdout = run("train.py", "--out", str(out), "--impl", impl, "--layers", str(layers),
                 *TINY, cwd=tmp_path)
    log = out / "char_rnn.log"
    losses = train_losses(log)
    assert len(losses) >= 10 and losses[-1] < losses[0] - 0.3, losses
    meta = json.loads((out / "vocab.json").read_text(encoding="utf-8"))
    bpcs = held_out_bpcs(log)
    assert bpcs and bpcs[-1] < meta["unigram_bpc"] - 0.2, (bpcs, meta["unigram_bpc"])
    assert "held-out bits/char" in stdout
    for name in ("train", "test", "deploy", "solver"):
        assert (out / f"char_rnn_{name}.prototxt").is_file()
    assert (out / "char_rnn_iter_120.caffemodel").is_file()
    assert (out / "char_rnn_iter_120.solverstate").is_file()

    text = run("sample.py", "--out", str(out), "--seed-text", "The ", "--length", "80",
               "--temperature", "0.5", "--seed", "7", cwd=tmp_path).rstrip("\n")
    assert text.startswith("The ") and len(text) == 84
    assert set(text) <= set(meta["vocab"])


def test_char_rnn_resume_and_text_file(tmp_path):
    text_file = tmp_path / "text.txt"
    text_file.write_text("ab ab abc abcd. " * 400 + "çé ü\n", encoding="utf-8")
    out = tmp_path / "out"
    args = ["--out", str(out), "--hidden", "16", "--embed", "8", "--steps", "10",
            "--batch", "4", "--test-interval", "10", "--display", "5",
            "--snapshot", "10", "--quiet"]
    run("train.py", str(text_file), *args, "--iters", "10", cwd=tmp_path)
    run("train.py", str(text_file), *args, "--iters", "20",
        "--resume", str(out / "char_rnn_iter_10.solverstate"), cwd=tmp_path)
    log = (out / "char_rnn.log").read_text()
    assert "Restoring previous solver status" in log
    assert (out / "char_rnn_iter_20.caffemodel").is_file()
    vocab = json.loads((out / "vocab.json").read_text(encoding="utf-8"))["vocab"]
    assert "ç" in vocab and "ü" in vocab


def test_char_rnn_layer_and_unroll_agree(monkeypatch):
    """Same weights, same windows: Caffe's LSTM layer (state carried inside the
    layer) and the unrolled net (final-state tops copied into the initial-state
    inputs) give the same losses window after window."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    import charnet  # noqa: PLC0415
    import corpus  # noqa: PLC0415

    import recaffe  # noqa: PLC0415
    from recaffe.recurrent import LSTMCell  # noqa: PLC0415

    T, N, V, H, E = 6, 3, 12, 8, 5
    shape = dict(vocab_size=V, hidden=H, num_layers=2, embed=E)
    nets = {}
    carries = {}
    for impl in ("layer", "unroll"):
        param, carry = charnet.build(impl, T, N, stage="test", **shape)
        nets[impl] = recaffe.Net(param, recaffe.TEST)
        carries[impl] = charnet.StateCarry(nets[impl], carry)
    layer_net, unroll_net = nets["layer"], nets["unroll"]
    rng = np.random.default_rng(0)
    for blobs in layer_net.params.values():  # weights large enough for memory
        for b in blobs:
            b.data[...] = rng.uniform(-1.0, 1.0, size=b.shape)
    for name in ("embed", "logits"):
        for a, b in zip(unroll_net.params[name], layer_net.params[name], strict=True):
            a.data[...] = b.data
    for k in (1, 2):
        LSTMCell(H, name=f"lstm{k}").set_caffe_blobs(unroll_net,
                                                   layer_net.params[f"lstm{k}"])
    streams = corpus.Streams(rng.integers(0, V, size=4 * T * N + 1), T, N)
    for k in range(4):
        losses, tops = [], []
        for impl in ("layer", "unroll"):
            net = nets[impl]
            data, label, cont = streams.window(k)
            net.blobs["data"].data[...] = data
            net.blobs["label"].data[...] = label
            net.blobs["cont"].data[...] = cont
            carries[impl]()
            losses.append(float(net.forward()["bpc"]))
            top = "lstm2" if impl == "layer" else "lstm2_h"
            tops.append(net.blobs[top].data.copy())
        np.testing.assert_allclose(tops[0], tops[1], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)
