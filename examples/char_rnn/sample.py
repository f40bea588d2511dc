"""Generate text with a trained char-RNN, one character at a time.

    python examples/char_rnn/sample.py --seed-text "The old " --length 300

Reads ``vocab.json`` and ``char_rnn_deploy.prototxt`` from ``--out`` (the
training folder) and the newest ``char_rnn_iter_<n>.caffemodel`` there (or
``--weights``). The deploy net has T = 1 and N = 1: each forward reads one
character and the recurrent state is carried to the next forward — by the
``LSTM`` layer itself, or, for the unrolled net, by copying the final-state
blobs into the initial-state inputs. ``cont`` is 0 for the first character
only. The seed text is fed first, then each sampled character is fed back.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import sys

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import charnet  # noqa: E402
import numpy as np  # noqa: E402

import recaffe  # noqa: E402
from recaffe.errors import RecaffeError  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="char_rnn_out", help="the training folder")
    p.add_argument("--weights", help="a .caffemodel (default: the newest snapshot)")
    p.add_argument("--seed-text", default="The ", help="text to start from")
    p.add_argument("--length", type=int, default=500, help="characters to generate")
    p.add_argument("--temperature", type=float, default=0.8,
                   help="softmax temperature (< 1: safer, > 1: wilder)")
    p.add_argument("--seed", type=int, default=None, help="random seed of the sampler")
    return p.parse_args(argv)


def newest_snapshot(out: str) -> str:
    found = []
    for path in glob.glob(os.path.join(out, "char_rnn_iter_*.caffemodel")):
        m = re.search(r"_iter_(\d+)\.caffemodel$", path)
        if m:
            found.append((int(m.group(1)), path))
    if not found:
        raise SystemExit(f"sample: no char_rnn_iter_*.caffemodel in {out}; train "
                         "first (examples/char_rnn/train.py) or give --weights")
    return max(found)[1]


class Sampler:
    """Streams characters through the T=1 deploy net, carrying the state."""

    def __init__(self, out: str, weights: str | None = None):
        meta_path = os.path.join(out, "vocab.json")
        try:
            with open(meta_path, encoding="utf-8") as f:
                meta = json.load(f)
        except OSError as exc:
            raise SystemExit(f"sample: cannot read {meta_path}: {exc.strerror}; "
                             "train first (examples/char_rnn/train.py)") from None
        self.vocab = meta["vocab"]
        self.index = {c: i for i, c in enumerate(self.vocab)}
        weights = weights or newest_snapshot(out)
        self.net = recaffe.Net(os.path.join(out, meta["deploy"]), recaffe.TEST,
                               weights=weights)
        self.carry = charnet.StateCarry(self.net, [tuple(p) for p in meta["carry"]])
        self.started = False

    def step(self, char_id: int) -> np.ndarray:
        """Feed one character; the probabilities of the next one."""
        blobs = self.net.blobs
        blobs["data"].data[...] = char_id
        blobs["cont"].data[...] = 1.0 if self.started else 0.0
        self.started = True
        self.carry()
        self.net.forward()
        return np.asarray(blobs["prob"].data).reshape(-1).astype(np.float64)

    def generate(self, seed_text: str, length: int, temperature: float,
                 rng: np.random.Generator) -> str:
        unknown = sorted(set(seed_text) - set(self.index))
        if unknown:
            raise SystemExit(f"sample: seed text characters not in the vocabulary: "
                             f"{unknown!r}")
        if not seed_text:
            seed_text = self.vocab[rng.integers(len(self.vocab))]
        if temperature <= 0:
            raise SystemExit("sample: --temperature must be > 0")
        for c in seed_text:
            prob = self.step(self.index[c])
        out = []
        for _ in range(length):
            # softmax(logits / temperature) = p^(1/temperature), renormalised
            logp = np.log(np.maximum(prob, 1e-30)) / temperature
            p = np.exp(logp - logp.max())
            p /= p.sum()
            k = int(rng.choice(len(p), p=p))
            out.append(self.vocab[k])
            prob = self.step(k)
        return seed_text + "".join(out)


def main(argv=None) -> int:
    args = parse_args(argv)
    recaffe.init_log(1)  # warnings only: keep stdout for the text
    sampler = Sampler(args.out, args.weights)
    rng = np.random.default_rng(args.seed)
    print(sampler.generate(args.seed_text, args.length, args.temperature, rng))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RecaffeError as exc:
        print(f"sample: {exc}", file=sys.stderr)
        sys.exit(1)
