"""Automatic Split insertion for blobs read by more than one consumer.

Each top (its producing layer and top index; in-place re-productions are new
producers) counts its consumers, plus one if the producer gives it an explicit
non-zero loss_weight. With more than one, a ``Split`` layer named
``<blob>_<producer>_<idx>_split`` is inserted after the producer, with tops
``<...>_split_<k>``; consumers are rewired in order. A loss weight moves to the
split's first top, which is reserved for it.
"""

from __future__ import annotations

from recaffe.errors import NetError
from recaffe.proto import caffe_pb2


def split_layer_name(blob: str, layer: str, idx: int) -> str:
    return f"{blob}_{layer}_{idx}_split"


def split_blob_name(blob: str, layer: str, idx: int, k: int) -> str:
    return f"{blob}_{layer}_{idx}_split_{k}"


def insert_splits(param):
    layers = list(param.layer)
    producer: dict[str, tuple[int, int]] = {}  # blob name -> (layer, top idx)
    bottom_src: dict[tuple[int, int], tuple[int, int]] = {}
    count: dict[tuple[int, int], int] = {}
    loss_w: dict[tuple[int, int], float] = {}
    for i, layer in enumerate(layers):
        for j, b in enumerate(layer.bottom):
            if b not in producer:
                raise NetError(
                    f"layer '{layer.name}' ({layer.type}): unknown bottom blob '{b}' "
                    f"(bottom index {j}); no earlier layer produces it"
                )
            src = producer[b]
            bottom_src[(i, j)] = src
            count[src] = count.get(src, 0) + 1
        for j, t in enumerate(layer.top):
            producer[t] = (i, j)
        for j, w in enumerate(layer.loss_weight):
            if j < len(layer.top) and w != 0:
                loss_w[(i, j)] = w
                count[(i, j)] = count.get((i, j), 0) + 1
    if all(c <= 1 for c in count.values()):
        out = caffe_pb2.NetParameter()
        out.CopyFrom(param)
        return out
    used: dict[tuple[int, int], int] = {}
    out = caffe_pb2.NetParameter()
    out.CopyFrom(param)
    del out.layer[:]
    for i, layer in enumerate(layers):
        new = out.layer.add()
        new.CopyFrom(layer)
        for j in range(len(layer.bottom)):
            src = bottom_src[(i, j)]
            if count.get(src, 0) > 1:
                pl = layers[src[0]]
                k = used.get(src, 1 if src in loss_w else 0)
                used[src] = k + 1
                new.bottom[j] = split_blob_name(pl.top[src[1]], pl.name, src[1], k)
        for j, t in enumerate(layer.top):
            c = count.get((i, j), 0)
            if c <= 1:
                continue
            split = out.layer.add()
            split.name = split_layer_name(t, layer.name, j)
            split.type = "Split"
            split.bottom.append(t)
            for k in range(c):
                split.top.append(split_blob_name(t, layer.name, j, k))
            if (i, j) in loss_w:
                w = loss_w[(i, j)]
                split.loss_weight.append(w)
                for _ in range(c - 1):
                    split.loss_weight.append(0.0)
                # Caffe clears the producer's whole loss_weight list here.
                del new.loss_weight[:]
    return out
