"""BVLC Caffe's own numbers for small nets around each layer type.

For each case of the repository's copy (``data/layers``, see data/README.md):
build ``Net(net.prototxt, weights.caffemodel, phase)`` from Caffe's own weights
file, write the inputs, run one
forward and one backward, then compare every blob's data and diff and every
learnable blob's data and diff with what BVLC Caffe computed.
"""

from __future__ import annotations

import numpy as np
import pytest
from conformance_data import MANIFEST, ROOT, load_case, write_bytes

import recaffe
from recaffe.net import Net
from recaffe.proto import caffe_pb2

RTOL, ATOL = 1e-4, 1e-5


CASES = sorted(MANIFEST["layers"])


def test_conformance_data_present():
    assert len(CASES) >= 40, f"{ROOT}: {len(CASES)} layer cases in MANIFEST.json"
    on_disk = sorted(p.stem for p in (ROOT / "layers").glob("*.npz"))
    assert on_disk == CASES, "layer case files and MANIFEST.json disagree"


def _diff_is_alias(net, name: str) -> bool:
    blob = net.blobs[name]
    for i, layer in enumerate(net.layers):
        if layer.type in ("Reshape", "Flatten") and net.bottom_vecs[i][0] is blob:
            return blob.shares_diff_with(net.top_vecs[i][0])
    return False


@pytest.mark.parametrize("case", CASES)
def test_layer_case(case, tmp_path):
    phase = caffe_pb2.TEST if MANIFEST["layers"][case]["phase"] == "TEST" \
        else caffe_pb2.TRAIN
    exp = load_case("layers", case)
    recaffe.set_mode_cpu()
    net = Net(str(ROOT / "layers" / f"{case}.prototxt"), phase,
              weights=str(write_bytes(exp, "weights.caffemodel", tmp_path)))
    for layer in net.layers:
        if layer.type == "BatchNorm":
            # These files were written after Caffe's pass, so they hold the
            # running statistics of that pass; Caffe started from zeros.
            for b in layer.blobs:
                b.data[...] = 0
    for key in exp:
        if key.startswith("input/"):
            net.blobs[key[len("input/"):]].data[...] = exp[key]
    net.forward()
    net.backward()
    failures = []
    checked = 0
    for key in exp:
        parts = key.split("/")
        if parts[0] == "blob":
            name, what = "/".join(parts[1:-1]), parts[-1]
            if name not in net.blobs:
                failures.append(f"missing blob {name}")
                continue
            blob = net.blobs[name]
            got = blob.data if what == "data" else blob.diff
        elif parts[0] == "param":
            layer, idx, what = parts[1], int(parts[2]), parts[3]
            if layer not in net.params:
                failures.append(f"missing params of layer {layer}")
                continue
            blob = net.params[layer][idx]
            got = blob.data if what == "data" else blob.diff
        else:
            continue
        want = exp[key]
        if (parts[0] == "blob" and what == "diff" and not np.any(want)
                and _diff_is_alias(net, name)):
            # Caffe's files list a diff that no layer writes as zero; here that
            # memory is an alias of a Reshape/Flatten top's diff (as in Caffe,
            # where ShareDiff makes them one buffer) and is compared there.
            continue
        got = np.asarray(got)
        if got.shape != want.shape and got.size == want.size:
            got = got.reshape(want.shape)
        if got.shape != want.shape:
            failures.append(f"{key}: shape {got.shape} != expected {want.shape}")
            continue
        if not np.allclose(got, want, rtol=RTOL, atol=ATOL):
            err = np.abs(got - want).max()
            failures.append(f"{key}: max abs error {err:.3g}")
        checked += 1
    assert not failures, f"{case}: " + "; ".join(failures)
    assert checked > 0
