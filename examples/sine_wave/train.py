"""Predict the next value of a noisy sum of sines with an LSTM, then let it run free.

    python examples/sine_wave/train.py

The signal is ``sin(2 pi t / P1 + a) + 0.5 sin(2 pi t / P2 + b)`` plus Gaussian
noise, with random phases ``a``, ``b`` per episode. The net (Caffe's ``LSTM``
layer, then an ``InnerProduct`` to one value, ``EuclideanLoss``) reads the
signal in windows of T steps from N parallel streams and learns to predict
x[t+1] from x[..t]. The LSTM layer carries its state from one window to the
next; ``cont`` is 0 where a stream starts a new episode.

After training, a deploy net with T = 1 is primed with a window of a new,
unseen episode (teacher forcing) and then runs free: each prediction is fed
back as the next input. Written into ``--out`` (default ``sine_wave_out/``):
the prototxt files, the Caffe-format log ``sine_wave.log``, its plot
``sine_wave_loss.png``, ``sine_wave_prediction.png`` (prediction vs truth) and
the final snapshot.
"""

from __future__ import annotations

import argparse
import math
import os
import time

# Small GEMMs: BLAS threads cost more than they give (set before numpy loads).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

import recaffe  # noqa: E402
from recaffe import layers as L  # noqa: E402
from recaffe.io.prototxt import to_text  # noqa: E402
from recaffe.net_spec import NetSpec  # noqa: E402
from recaffe.proto import caffe_pb2  # noqa: E402
from recaffe.tools.script import plot_curve, run_main  # noqa: E402

PERIODS = (25.0, 9.0)
AMPLITUDES = (1.0, 0.5)


class Signal:
    """Episodes of the noisy signal; episode ``e`` of stream ``n`` is fixed by
    the seed, so any window can be regenerated (resumable, repeatable)."""

    def __init__(self, seed: int, noise: float, episode_len: int):
        self.seed, self.noise, self.episode_len = seed, noise, episode_len

    def episode(self, n: int, e: int, length: int | None = None, clean=False):
        length = self.episode_len if length is None else length
        rng = np.random.default_rng([self.seed, n, e])
        t = np.arange(length + 1, dtype=np.float64)
        x = np.zeros(length + 1)
        for period, amp in zip(PERIODS, AMPLITUDES, strict=True):
            x += amp * np.sin(2 * math.pi * t / period + rng.uniform(0, 2 * math.pi))
        noisy = x + self.noise * rng.standard_normal(length + 1)
        return x if clean else noisy


class Windows:
    """Window k of N streams: ``x`` (T, N, 1), ``target`` (T, N, 1), ``cont``
    (T, N). Each stream plays episodes of ``episode_len`` steps back to back;
    ``cont`` is 0 at the first step of every episode."""

    def __init__(self, signal: Signal, T: int, N: int, stream_offset: int = 0):
        if signal.episode_len % T:
            raise ValueError(f"episode length {signal.episode_len} must be a "
                             f"multiple of T={T}")
        self.signal, self.T, self.N, self.offset = signal, T, N, stream_offset
        self.per_episode = signal.episode_len // T
        self._cache: dict[tuple[int, int], np.ndarray] = {}

    def _episode(self, n: int, e: int) -> np.ndarray:
        key = (n, e)
        if key not in self._cache:
            if len(self._cache) > 4 * self.N:
                self._cache.clear()
            self._cache[key] = self.signal.episode(self.offset + n, e)
        return self._cache[key]

    def window(self, k: int):
        e, j = divmod(int(k), self.per_episode)
        t0 = j * self.T
        x = np.empty((self.T, self.N, 1), dtype=np.float32)
        y = np.empty_like(x)
        for n in range(self.N):
            s = self._episode(n, e)
            x[:, n, 0] = s[t0:t0 + self.T]
            y[:, n, 0] = s[t0 + 1:t0 + self.T + 1]
        cont = np.ones((self.T, self.N), dtype=np.float32)
        if j == 0:
            cont[0] = 0.0
        return x, y, cont


def build(T: int, N: int, hidden: int, deploy: bool = False):
    ns = NetSpec()
    if deploy:
        ns.x, ns.cont = L.Input(shape=[dict(dim=[T, N, 1]), dict(dim=[T, N])], ntop=2)
    else:
        ns.x, ns.cont, ns.target = L.Input(
            shape=[dict(dim=[T, N, 1]), dict(dim=[T, N]), dict(dim=[T, N, 1])], ntop=3)
    ns.lstm1 = L.LSTM(ns.x, ns.cont, recurrent_param=dict(
        num_output=hidden, weight_filler=dict(type="uniform", min=-0.1, max=0.1),
        bias_filler=dict(type="constant", value=0.0)))
    ns.pred = L.InnerProduct(ns.lstm1, num_output=1, axis=2,
                             weight_filler=dict(type="gaussian", std=0.1))
    if not deploy:
        ns.loss = L.EuclideanLoss(ns.pred, ns.target)
    param = ns.to_proto()
    param.name = "sine_wave_deploy" if deploy else "sine_wave"
    return param


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="sine_wave_out", help="output folder")
    p.add_argument("--hidden", type=int, default=32, help="LSTM size H")
    p.add_argument("--steps", type=int, default=50, help="BPTT window T")
    p.add_argument("--batch", type=int, default=16, help="parallel streams N")
    p.add_argument("--episode", type=int, default=400,
                   help="steps per episode (a multiple of --steps)")
    p.add_argument("--noise", type=float, default=0.05, help="noise std")
    p.add_argument("--iters", type=int, default=2000, help="training iterations")
    p.add_argument("--lr", type=float, default=0.01, help="Adam base_lr")
    p.add_argument("--clip", type=float, default=10.0, help="clip_gradients")
    p.add_argument("--test-interval", type=int, default=250)
    p.add_argument("--display", type=int, default=50)
    p.add_argument("--prime", type=int, default=100, help="priming steps")
    p.add_argument("--generate", type=int, default=200, help="free-running steps")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--quiet", action="store_true", help="log to the file only")
    return p.parse_args(argv)


def solver_param(args, train_net: str, test_net: str, test_iter: int):
    s = caffe_pb2.SolverParameter()
    s.train_net = train_net
    s.test_net.append(test_net)
    s.test_iter.append(test_iter)
    s.test_interval = args.test_interval
    s.type = "Adam"
    s.base_lr = args.lr
    s.momentum, s.momentum2 = 0.9, 0.999
    s.lr_policy = "step"
    s.gamma = 0.3
    s.stepsize = max(1, (2 * args.iters) // 3)
    s.clip_gradients = args.clip
    s.display = args.display
    s.average_loss = max(1, args.display)
    s.max_iter = args.iters
    s.snapshot_prefix = os.path.join(args.out, "sine_wave")
    s.random_seed = args.seed
    return s


class Feeder:
    def __init__(self, net, windows: Windows, position=None):
        self.net, self.windows, self.position, self.k = net, windows, position, 0

    def on_layer(self, i: int) -> None:
        if i != 0:
            return
        k = self.k if self.position is None else self.position()
        self.k += 1
        x, y, cont = self.windows.window(k)
        self.net.blobs["x"].data[...] = x
        self.net.blobs["target"].data[...] = y
        self.net.blobs["cont"].data[...] = cont


def free_run(deploy, signal: Signal, prime: int, generate: int, stream: int):
    """Prime the T=1 net with ``prime`` noisy values, then feed back its own
    predictions for ``generate`` steps. Returns (truth, noisy, predictions)."""
    noisy = signal.episode(stream, 0, prime + generate)
    truth = signal.episode(stream, 0, prime + generate, clean=True)
    preds = np.zeros(prime + generate + 1)
    blobs = deploy.blobs
    value = noisy[0]
    for t in range(prime + generate):
        if t < prime:
            value = noisy[t]  # teacher forcing while priming
        blobs["x"].data[...] = value
        blobs["cont"].data[...] = 0.0 if t == 0 else 1.0
        deploy.forward()
        value = float(blobs["pred"].data.reshape(-1)[0])
        preds[t + 1] = value
    return truth, noisy, preds


def plot_prediction(png: str, truth, noisy, preds, prime: int) -> bool:
    try:
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        print("sine_wave: matplotlib is not installed, no PNG (pip install "
              "'recaffe[plot]')")
        return False
    t = np.arange(len(truth))
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.plot(t, noisy, ".", color="0.6", markersize=3, label="noisy input")
    ax.plot(t, truth, "-", color="k", linewidth=1, label="truth (noise-free)")
    ax.plot(t[1:prime + 1], preds[1:prime + 1], "-", color="tab:blue",
            label="one-step prediction (primed)")
    ax.plot(t[prime:], preds[prime:], "-", color="tab:red",
            label="free-running prediction")
    ax.axvline(prime, color="0.4", linestyle=":")
    ax.set_xlabel("t")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)
    return True


def main(argv=None) -> int:
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    logfile = os.path.join(args.out, "sine_wave.log")
    recaffe.init_log(0, to_stderr=not args.quiet, log_file=logfile)
    recaffe.set_random_seed(args.seed)
    T, N = args.steps, args.batch
    signal = Signal(args.seed, args.noise, args.episode)
    try:
        train_windows = Windows(signal, T, N)
        # held-out streams: stream ids no training stream uses
        test_windows = Windows(signal, T, N, stream_offset=1_000_000)
    except ValueError as exc:
        raise SystemExit(f"sine_wave: {exc}") from None

    files = {k: os.path.join(args.out, f"sine_wave_{k}.prototxt")
             for k in ("train", "test", "deploy", "solver")}
    for key, param in (("train", build(T, N, args.hidden)),
                       ("test", build(T, N, args.hidden)),
                       ("deploy", build(1, 1, args.hidden, deploy=True))):
        with open(files[key], "w") as f:
            f.write(to_text(param))
    with open(files["solver"], "w") as f:
        f.write(to_text(solver_param(args, files["train"], files["test"],
                                     train_windows.per_episode)))

    solver = recaffe.get_solver(files["solver"])
    train_feed = Feeder(solver.net, train_windows, position=lambda: solver.iter)
    test_feed = Feeder(solver.test_nets[0], test_windows)
    solver.net.before_forward(train_feed.on_layer)
    solver.test_nets[0].before_forward(test_feed.on_layer)
    start = time.perf_counter()
    solver.solve()
    if solver.iter % args.test_interval:
        solver.test(0)
    elapsed = time.perf_counter() - start

    deploy = recaffe.Net(files["deploy"], recaffe.TEST)
    deploy.share_with(solver.net)
    truth, noisy, preds = free_run(deploy, signal, args.prime, args.generate,
                                   stream=2_000_000)
    p, g = args.prime, args.generate
    w = max(1, p // 4)  # the first steps of priming have little history to go on
    one_step = float(np.sqrt(np.mean((preds[w:p + 1] - truth[w:p + 1]) ** 2)))
    ahead = slice(p + 1, p + g + 1)
    free = float(np.sqrt(np.mean((preds[ahead] - truth[ahead]) ** 2)))
    signal_rms = float(np.sqrt(np.mean(truth ** 2)))
    recaffe.log(f"sine_wave: {solver.iter} iterations in {elapsed:.1f} s; "
                f"one-step RMSE (primed) = {one_step:.4f}, free-running RMSE over "
                f"{g} steps = {free:.4f} (signal RMS {signal_rms:.4f})")
    print(f"one-step RMSE {one_step:.4f}; free-running RMSE over {g} steps "
          f"{free:.4f} (signal RMS {signal_rms:.4f}, noise std {args.noise}); "
          f"{solver.iter} iterations, {elapsed:.1f} s")
    png = os.path.join(args.out, "sine_wave_prediction.png")
    if plot_prediction(png, truth, noisy, preds, p):
        print(f"prediction vs truth: {png}")
    plot_curve(logfile, os.path.join(args.out, "sine_wave_loss.png"), "sine_wave")
    return 0


if __name__ == "__main__":
    run_main(main, "sine_wave")
