"""Train a character-level LSTM language model on a UTF-8 text file.

    python examples/char_rnn/train.py                 # generated default corpus
    python examples/char_rnn/train.py book.txt --impl unroll --layers 2

Writes into ``--out`` (default ``char_rnn_out/``): the train/test/deploy
prototxt files and the solver prototxt it trains with, ``vocab.json``,
snapshots (``char_rnn_iter_<n>.caffemodel`` / ``.solverstate``), the
Caffe-format log ``char_rnn.log`` and its plot ``char_rnn_loss.png``.
Held-out bits per character are logged at every test interval
(``Test net output #0: bpc = ...``) next to the unigram model's.
``--resume <file>.solverstate`` continues a run. See README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

# The GEMMs of a small recurrent net are too small to gain from BLAS threads,
# and on a busy machine the threads cost far more than they give: one thread
# unless the user asks otherwise (set before numpy is imported).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import charnet  # noqa: E402
import corpus  # noqa: E402

import recaffe  # noqa: E402
from recaffe.io.prototxt import to_text  # noqa: E402
from recaffe.proto import caffe_pb2  # noqa: E402
from recaffe.tools.script import plot_curve, run_main  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("text", nargs="?", help="UTF-8 text file (default: a generated "
                   "corpus of simple English sentences)")
    p.add_argument("--out", default="char_rnn_out", help="output folder")
    p.add_argument("--impl", choices=("layer", "unroll"), default="layer",
                   help="Caffe's LSTM layer, or one step unrolled by recaffe.unroll")
    p.add_argument("--layers", type=int, choices=(1, 2), default=1,
                   help="number of stacked LSTMs")
    p.add_argument("--hidden", type=int, default=128, help="LSTM size H")
    p.add_argument("--embed", type=int, default=32, help="embedding size")
    p.add_argument("--steps", type=int, default=50, help="BPTT window T")
    p.add_argument("--batch", type=int, default=32, help="parallel streams N")
    p.add_argument("--iters", type=int, default=1500, help="training iterations")
    p.add_argument("--lr", type=float, default=0.004, help="Adam base_lr")
    p.add_argument("--clip", type=float, default=5.0, help="clip_gradients (L2 norm)")
    p.add_argument("--test-interval", type=int, default=250)
    p.add_argument("--display", type=int, default=50)
    p.add_argument("--snapshot", type=int, default=500, help="snapshot interval")
    p.add_argument("--holdout", type=float, default=0.1,
                   help="fraction of the text held out for testing (its end)")
    p.add_argument("--corpus-chars", type=int, default=200_000,
                   help="size of the generated default corpus")
    p.add_argument("--seed", type=int, default=1701, help="random seed")
    p.add_argument("--resume", help="a .solverstate to continue from")
    p.add_argument("--quiet", action="store_true",
                   help="log to the file only, not to stderr")
    return p.parse_args(argv)


def load_text(args) -> str:
    if args.text is None:
        return corpus.generate_corpus(args.corpus_chars)
    try:
        with open(args.text, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise SystemExit(f"char_rnn: cannot read {args.text}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise SystemExit(f"char_rnn: {args.text} is not UTF-8 text: {exc}") from None


def solver_param(args, train_net: str, test_net: str, test_iter: int):
    s = caffe_pb2.SolverParameter()
    s.train_net = train_net
    s.test_net.append(test_net)
    s.test_iter.append(test_iter)
    s.test_interval = args.test_interval
    s.test_initialization = False
    s.type = "Adam"
    s.base_lr = args.lr
    s.momentum = 0.9
    s.momentum2 = 0.999
    s.lr_policy = "step"
    s.gamma = 0.5
    s.stepsize = max(1, (2 * args.iters) // 3)
    s.clip_gradients = args.clip
    s.display = args.display
    s.average_loss = max(1, args.display)
    s.max_iter = args.iters
    s.snapshot = args.snapshot
    s.snapshot_prefix = os.path.join(args.out, "char_rnn")
    s.random_seed = args.seed
    return s


def write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def last_test_value(logfile: str, name: str) -> float | None:
    """The last ``Test net output #k: <name> = v`` of a Caffe log."""
    value = None
    with open(logfile, encoding="utf-8") as f:
        for line in f:
            key = "Test net output #"
            if key in line and f": {name} = " in line:
                value = float(line.split(f": {name} = ")[1].split()[0])
    return value


def main(argv=None) -> int:
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    logfile = os.path.join(args.out, "char_rnn.log")
    recaffe.init_log(0, to_stderr=not args.quiet, log_file=logfile)
    recaffe.set_random_seed(args.seed)

    text = load_text(args)
    vocab = corpus.build_vocab(text)
    ids = corpus.encode(text, vocab)
    split = int(len(ids) * (1.0 - args.holdout))
    train_ids, test_ids = ids[:split], ids[split:]
    T, N = args.steps, args.batch
    # The held-out text is read by fewer, longer streams (one full pass per test).
    test_n = max(1, min(N, (len(test_ids) - 1) // (4 * T)))
    try:
        train_streams = corpus.Streams(train_ids, T, N)
        test_streams = corpus.Streams(test_ids, T, test_n)
    except ValueError as exc:
        raise SystemExit(f"char_rnn: {exc}") from None
    unigram = corpus.unigram_bits_per_char(train_ids, test_ids, len(vocab))
    recaffe.log(f"char_rnn: {len(text)} characters, vocabulary of {len(vocab)}, "
                f"{len(train_ids)} for training, {len(test_ids)} held out; "
                f"impl = {args.impl}, {args.layers} LSTM layer(s) of {args.hidden}")
    recaffe.log(f"char_rnn: unigram model held-out bits/char = {unigram:.4f}")

    # -- the Caffe files -------------------------------------------------------------
    shape = dict(vocab_size=len(vocab), hidden=args.hidden, num_layers=args.layers,
                 embed=args.embed)
    train_p, train_carry = charnet.build(args.impl, T, N, stage="train", **shape)
    test_p, test_carry = charnet.build(args.impl, T, test_n, stage="test", **shape)
    deploy_p, deploy_carry = charnet.build(args.impl, 1, 1, stage="deploy", **shape)
    files = {k: os.path.join(args.out, f"char_rnn_{k}.prototxt")
             for k in ("train", "test", "deploy", "solver")}
    write(files["train"], to_text(train_p))
    write(files["test"], to_text(test_p))
    write(files["deploy"], to_text(deploy_p))
    sp = solver_param(args, files["train"], files["test"], test_streams.num_windows)
    write(files["solver"], to_text(sp))
    meta = {"vocab": vocab, "impl": args.impl, "deploy": "char_rnn_deploy.prototxt",
            "carry": deploy_carry, "unigram_bpc": unigram}
    write(os.path.join(args.out, "vocab.json"), json.dumps(meta, ensure_ascii=False))

    # -- training ----------------------------------------------------------------------
    solver = recaffe.get_solver(files["solver"])
    # Window k of the training streams is read at iteration k, so a resumed
    # run continues the streams where the snapshot left them.
    train_feed = Feeder(solver.net, train_streams, train_carry,
                        position=lambda: solver.iter)
    test_feed = Feeder(solver.test_nets[0], test_streams, test_carry)
    solver.net.before_forward(train_feed.on_layer)
    solver.test_nets[0].before_forward(test_feed.on_layer)

    start = time.perf_counter()
    solver.solve(args.resume)
    if solver.iter % args.test_interval:
        solver.test(0)
    elapsed = time.perf_counter() - start
    bpc = last_test_value(logfile, "bpc")
    recaffe.log(f"char_rnn: {solver.iter} iterations in {elapsed:.1f} s; held-out "
                f"bits/char = {bpc:.4f} (unigram {unigram:.4f})")
    print(f"held-out bits/char: {bpc:.4f}  (unigram model: {unigram:.4f}; "
          f"{solver.iter} iterations, {elapsed:.1f} s)")
    plot_curve(logfile, os.path.join(args.out, "char_rnn_loss.png"), "char_rnn")
    return 0


class Feeder:
    """Fills a net's ``data``/``label``/``cont`` with the next window of its
    streams (and carries the unrolled net's state) before each forward."""

    def __init__(self, net, streams: corpus.Streams, carry, position=None):
        self.net = net
        self.streams = streams
        self.carry = charnet.StateCarry(net, carry)
        self.position = position
        self.k = 0

    def on_layer(self, i: int) -> None:
        if i != 0:  # called before every layer; feed once, before the first
            return
        k = self.k if self.position is None else self.position()
        data, label, cont = self.streams.window(k)
        self.k += 1
        blobs = self.net.blobs
        blobs["data"].data[...] = data
        blobs["label"].data[...] = label
        blobs["cont"].data[...] = cont
        self.carry()


if __name__ == "__main__":
    run_main(main, "char_rnn")
