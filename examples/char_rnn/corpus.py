"""Text for the char-RNN: a generated default corpus, the vocabulary, the streams.

The default corpus needs no download: simple English sentences generated from
a small grammar with a fixed seed. Any UTF-8 text file works instead.

Truncated back-propagation through time reads the text as ``N`` parallel
streams: stream ``n`` is the n-th contiguous 1/N of the text. Batch ``k``
holds, for every stream, the next ``T`` characters after batch ``k - 1``'s, so
the recurrent state at the end of batch ``k - 1`` is exactly the state the
characters of batch ``k`` continue from. ``cont`` is 0 only at the very start
of a stream (the first step of the first window, and again when the streams
wrap around to their beginning); everywhere else it is 1.
"""

from __future__ import annotations

import math
import random
from collections import Counter

import numpy as np

# -- the default corpus: a small grammar ------------------------------------------
_NAMES = ["Anna", "Ben", "Clara", "David", "Emma", "Felix", "Grace", "Henry",
          "Iris", "Jack", "Lucy", "Martin", "Nora", "Oscar", "Paula", "Tom"]
_NOUNS = ["cat", "dog", "bird", "horse", "farmer", "teacher", "child", "king",
          "queen", "sailor", "baker", "doctor", "fox", "rabbit", "painter",
          "student", "miller", "soldier"]
_THINGS = ["apple", "letter", "book", "river", "garden", "house", "bridge",
           "song", "window", "basket", "lamp", "boat", "road", "tree", "stone",
           "cake", "coat", "map"]
_ADJS = ["old", "young", "little", "happy", "quiet", "brave", "clever", "tired",
         "kind", "small", "green", "red", "bright", "dark", "warm", "cold"]
_VERBS_T = ["saw", "found", "liked", "carried", "painted", "opened", "watched",
            "followed", "remembered", "wanted", "made", "lost", "cleaned",
            "counted", "visited", "heard"]
_VERBS_I = ["slept", "laughed", "waited", "sang", "walked", "ran", "smiled",
            "danced", "listened", "worked", "rested", "cried"]
_ADVS = ["slowly", "quickly", "quietly", "happily", "carefully", "sadly",
         "again", "together", "early", "late"]
_PLACES = ["in the garden", "by the river", "near the old bridge",
           "on the hill", "at the market", "in the kitchen", "under the tree",
           "in the village", "on the road", "at the window", "in the forest"]
_TIMES = ["In the morning", "At night", "One day", "Later", "After dinner",
          "In the spring", "Every evening", "Before sunrise", "On Sunday"]
_SAYS = ["said", "asked", "answered", "whispered", "shouted"]


def _np(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.3:
        return rng.choice(_NAMES)
    det = rng.choice(["the", "the", "a", "my", "her", "his"])
    words = rng.choice(_NOUNS)
    if rng.random() < 0.5:
        words = f"{rng.choice(_ADJS)} {words}"
    if det == "a" and words[0] in "aeiou":
        det = "an"
    return f"{det} {words}"


def _obj(rng: random.Random) -> str:
    det = rng.choice(["the", "the", "a", "her", "his"])
    words = rng.choice(_THINGS)
    if rng.random() < 0.4:
        words = f"{rng.choice(_ADJS)} {words}"
    if det == "a" and words[0] in "aeiou":
        det = "an"
    return f"{det} {words}"


def _clause(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.45:
        s = f"{_np(rng)} {rng.choice(_VERBS_T)} {_obj(rng)}"
    elif r < 0.75:
        s = f"{_np(rng)} {rng.choice(_VERBS_I)} {rng.choice(_ADVS)}"
    else:
        s = f"{_np(rng)} {rng.choice(_VERBS_I)} {rng.choice(_PLACES)}"
    return s


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _sentence(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.15:
        return f"{rng.choice(_TIMES)}, {_clause(rng)}."
    if r < 0.3:
        return f"{_cap(_clause(rng))}, and {_clause(rng)}."
    if r < 0.4:
        return f"{_cap(_clause(rng))} because {_clause(rng)}."
    if r < 0.5:
        q = _cap(_clause(rng))
        return f"\"{q}!\" {rng.choice(_SAYS)} {_np(rng)}."
    return f"{_cap(_clause(rng))}."


def generate_corpus(num_chars: int = 200_000, seed: int = 1) -> str:
    """Paragraphs of generated English sentences, about ``num_chars`` long."""
    rng = random.Random(seed)
    paragraphs: list[str] = []
    total = 0
    while total < num_chars:
        para = " ".join(_sentence(rng) for _ in range(rng.randint(3, 7)))
        paragraphs.append(para)
        total += len(para) + 2
    return "\n\n".join(paragraphs) + "\n"


# -- vocabulary ------------------------------------------------------------------------
def build_vocab(text: str) -> list[str]:
    """The sorted distinct characters of ``text``."""
    return sorted(set(text))


def encode(text: str, vocab: list[str]) -> np.ndarray:
    index = {c: i for i, c in enumerate(vocab)}
    unknown = sorted(set(text) - set(index))
    if unknown:
        raise ValueError(f"characters not in the vocabulary: {unknown[:10]!r}")
    return np.fromiter((index[c] for c in text), dtype=np.int64, count=len(text))


def unigram_bits_per_char(train_ids: np.ndarray, test_ids: np.ndarray,
                          vocab_size: int) -> float:
    """Held-out cross-entropy (bits/char) of the add-one-smoothed unigram model."""
    counts = Counter(train_ids.tolist())
    total = len(train_ids) + vocab_size
    bits = 0.0
    for c, k in Counter(test_ids.tolist()).items():
        bits -= k * math.log2((counts.get(c, 0) + 1) / total)
    return bits / len(test_ids)


# -- streams for truncated BPTT --------------------------------------------------------
class Streams:
    """``ids`` cut into ``N`` parallel streams, read ``T`` characters at a time.

    Window ``k`` (taken modulo :attr:`num_windows`) gives ``data`` (T, N), the
    next-character ``label`` (T, N) and ``cont`` (T, N).
    """

    def __init__(self, ids: np.ndarray, T: int, N: int):
        self.T, self.N = int(T), int(N)
        stream_len = (len(ids) - 1) // self.N
        self.num_windows = stream_len // self.T
        if self.num_windows < 1:
            raise ValueError(
                f"the text ({len(ids)} characters) is too short for {self.N} streams "
                f"of windows of {self.T} characters; use a longer text or smaller "
                "--batch/--steps")
        span = self.num_windows * self.T
        starts = np.arange(self.N) * stream_len
        idx = starts[None, :] + np.arange(span + 1)[:, None]  # (span + 1, N)
        self._seq = ids[idx].astype(np.float32)

    def window(self, k: int):
        j = int(k) % self.num_windows
        t0 = j * self.T
        data = self._seq[t0:t0 + self.T]
        label = self._seq[t0 + 1:t0 + self.T + 1]
        cont = np.ones((self.T, self.N), dtype=np.float32)
        if j == 0:
            cont[0] = 0.0
        return data, label, cont
