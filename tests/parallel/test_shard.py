"""The sharding rule of the data layers, checked in one process: the layers of
rank 0 and rank 1 (of 2) together serve, per iteration, exactly the items one
process with the double batch serves; test nets read the whole source."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

import recaffe as caffe
from recaffe.errors import DataError
from recaffe.parallel import Context, ItemFilter, SelfComm, owner, set_context
from recaffe.proto import caffe_pb2


@pytest.fixture
def as_rank():
    """Build nets as if this process were rank ``r`` of ``n``."""
    old = []

    def enter(r: int, n: int):
        old.append(set_context(Context(r, n, SelfComm())))

    yield enter
    if old:
        set_context(old[0])


def test_item_filter_is_k_mod_n():
    seen = {r: [] for r in range(3)}
    for r in range(3):
        f = ItemFilter(r, 3)
        seen[r] = [k for k in range(12) if f.keep()]
    assert seen == {r: [k for k in range(12) if owner(k, 3) == r] for r in range(3)}
    assert sorted(k for ks in seen.values() for k in ks) == list(range(12))


def _h5(tmp_path, rows=(7, 5)) -> str:
    paths, start = [], 0
    for i, n in enumerate(rows):
        p = tmp_path / f"p{i}.h5"
        with h5py.File(p, "w") as fh:
            fh["data"] = np.arange(start, start + n, dtype=np.float32)[:, None]
        paths.append(str(p))
        start += n
    src = tmp_path / "list.txt"
    src.write_text("\n".join(paths) + "\n")
    return str(src)


def _net(tmp_path, layer: str, phase, name="n.prototxt"):
    path = tmp_path / name
    path.write_text(f'name: "n"\n{layer}\n')
    return caffe.Net(str(path), phase)


def _batches(net, top: str, iters: int):
    out = []
    for _ in range(iters):
        net.forward()
        out.append(net.blobs[top].data.reshape(-1).copy())
    return out


def _check_union(tmp_path, as_rank, layer_of_batch, top, iters=7):
    """Rank 0 and rank 1 with batch B cover one process's batch 2B each time."""
    whole = _batches(_net(tmp_path, layer_of_batch(4), caffe.TRAIN), top, iters)
    parts = []
    for r in range(2):
        as_rank(r, 2)
        parts.append(_batches(_net(tmp_path, layer_of_batch(2), caffe.TRAIN,
                                   f"r{r}.prototxt"), top, iters))
    as_rank(0, 1)
    for it in range(iters):
        got = np.sort(np.concatenate([parts[0][it], parts[1][it]]))
        np.testing.assert_array_equal(got, np.sort(whole[it]))
        # and the two ranks' items are disjoint within the iteration (k mod 2)
        assert not set(parts[0][it].tolist()) & set(parts[1][it].tolist())


def test_hdf5_rows_split_over_ranks_across_files(tmp_path, as_rank):
    src = _h5(tmp_path)

    def layer(b):
        return (f'layer {{ name: "d" type: "HDF5Data" top: "data" '
                f'hdf5_data_param {{ source: "{src}" batch_size: {b} }} }}')

    _check_union(tmp_path, as_rank, layer, "data")


def test_memory_data_rows_split_over_ranks(tmp_path, as_rank):
    data = np.arange(16, dtype=np.float32).reshape(16, 1, 1, 1)

    def run(b, r, n):
        as_rank(r, n)
        net = _net(tmp_path, f'layer {{ name: "m" type: "MemoryData" top: "data" '
                   f'top: "label" memory_data_param {{ batch_size: {b} channels: 1 '
                   f'height: 1 width: 1 }} }}', caffe.TRAIN, f"m{r}{n}.prototxt")
        net.set_input_arrays(data, np.zeros(16, dtype=np.float32))
        return _batches(net, "data", 6)

    whole = run(4, 0, 1)
    parts = [run(2, r, 2) for r in range(2)]
    as_rank(0, 1)
    for it in range(6):
        got = np.sort(np.concatenate([parts[0][it], parts[1][it]]))
        np.testing.assert_array_equal(got, np.sort(whole[it]))


def test_memory_data_needs_a_multiple_of_ranks_times_batch(tmp_path, as_rank):
    as_rank(1, 2)
    net = _net(tmp_path, 'layer { name: "m" type: "MemoryData" top: "data" '
               'top: "label" memory_data_param { batch_size: 3 channels: 1 '
               'height: 1 width: 1 } }', caffe.TRAIN)
    with pytest.raises(DataError, match=r"multiple of ranks x batch_size \(2 x 3\)"):
        net.set_input_arrays(np.zeros((9, 1, 1, 1), np.float32),
                             np.zeros(9, np.float32))


def _lmdb(tmp_path, n: int) -> str:
    pytest.importorskip("lmdb")
    from recaffe.io.db import LMDBWriter

    path = str(tmp_path / f"db{n}")
    with LMDBWriter(path) as w:
        for k in range(n):
            d = caffe_pb2.Datum(channels=1, height=1, width=1, label=k)
            d.float_data.append(float(k))
            w.put(f"{k:05d}".encode(), d.SerializeToString())
    return path


def test_lmdb_records_split_over_ranks(tmp_path, as_rank):
    src = _lmdb(tmp_path, 11)

    def layer(b):
        return (f'layer {{ name: "d" type: "Data" top: "data" top: "label" '
                f'data_param {{ source: "{src}" batch_size: {b} backend: LMDB }} }}')

    _check_union(tmp_path, as_rank, layer, "label")


def test_lmdb_with_fewer_records_than_ranks_is_an_error(tmp_path, as_rank):
    src = _lmdb(tmp_path, 2)
    as_rank(2, 3)
    with pytest.raises(DataError, match=r"holds 2 record\(s\), fewer than the 3 "
                                        r"data-parallel ranks"):
        _net(tmp_path, f'layer {{ name: "d" type: "Data" top: "data" '
             f'data_param {{ source: "{src}" batch_size: 1 backend: LMDB }} }}',
             caffe.TRAIN)


def test_image_data_lines_split_over_ranks(tmp_path, as_rank):
    pil = pytest.importorskip("PIL.Image")
    lines = []
    for k in range(9):
        p = tmp_path / f"i{k}.png"
        pil.fromarray(np.full((2, 2), k * 10, np.uint8)).save(p)
        lines.append(f"{p} {k}")
    (tmp_path / "imgs.txt").write_text("\n".join(lines) + "\n")
    src = tmp_path / "imgs.txt"

    def layer(b):
        return (f'layer {{ name: "d" type: "ImageData" top: "data" top: "label" '
                f'image_data_param {{ source: "{src}" batch_size: {b} '
                f'is_color: false }} }}')

    _check_union(tmp_path, as_rank, layer, "label", iters=5)


def test_test_nets_read_the_whole_source_on_every_rank(tmp_path, as_rank):
    src = _h5(tmp_path)
    as_rank(1, 2)
    net = _net(tmp_path, f'layer {{ name: "d" type: "HDF5Data" top: "data" '
               f'hdf5_data_param {{ source: "{src}" batch_size: 3 }} }}', caffe.TEST)
    np.testing.assert_array_equal(_batches(net, "data", 1)[0], [0, 1, 2])


def test_python_layers_and_pycaffe_see_rank_and_count(as_rank):
    as_rank(1, 4)
    assert (caffe.solver_rank(), caffe.solver_count()) == (1, 4)
    assert (caffe.parallel.rank(), caffe.parallel.size()) == (1, 4)
    as_rank(0, 1)
    assert (caffe.solver_rank(), caffe.solver_count()) == (0, 1)

