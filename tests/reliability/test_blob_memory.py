"""A net whose blobs cannot be allocated is recaffe's error naming the layer,
the blob, its shape and the bytes asked for, not numpy's bare MemoryError."""

from __future__ import annotations

import pytest

import recaffe
from recaffe.cli.__main__ import main as cli_main
from recaffe.errors import BlobMemoryError, NetError

HUGE_INPUT = ('layer { name: "in" type: "Input" top: "x" '
              "input_param { shape { dim: 1000000 dim: 1000000 } } }\n")
HUGE_WEIGHTS = ('layer { name: "in" type: "Input" top: "x" '
                "input_param { shape { dim: 2 dim: 1000000 } } }\n"
                'layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y" '
                "inner_product_param { num_output: 1000000 } }\n")


def test_huge_input_names_layer_blob_shape_and_bytes(tmp_path):
    path = tmp_path / "net.prototxt"
    path.write_text(HUGE_INPUT)
    with pytest.raises(BlobMemoryError) as info:
        recaffe.Net(str(path), recaffe.TEST)
    assert str(info.value) == (
        "Input layer 'in': top[0] 'x': cannot allocate the data of a blob of shape "
        "(1000000, 1000000): 4000000000000 bytes (3.64 TiB, float32) asked for "
        "(MemoryError)")
    assert isinstance(info.value, NetError)


def test_huge_weights_name_the_layer(tmp_path):
    path = tmp_path / "net.prototxt"
    path.write_text(HUGE_WEIGHTS)
    with pytest.raises(BlobMemoryError, match=r"^InnerProduct layer 'ip': .*shape "
                       r"\(1000000, 1000000\): 4000000000000 bytes"):
        recaffe.Net(str(path), recaffe.TEST)


def test_reshape_after_input_change_names_the_layer(tmp_path):
    # Fine at setup (1 x 10^6 floats); a larger input makes the Tile's top
    # 4 TB at the next reshape.
    path = tmp_path / "net.prototxt"
    path.write_text('layer { name: "in" type: "Input" top: "x" '
                    "input_param { shape { dim: 1 dim: 1 } } }\n"
                    'layer { name: "tile" type: "Tile" bottom: "x" top: "y" '
                    "tile_param { axis: 1 tiles: 1000000 } }\n")
    net = recaffe.Net(str(path), recaffe.TEST)
    net.blobs["x"].reshape(1000, 1000)
    with pytest.raises(BlobMemoryError, match=r"^Tile layer 'tile': top\[0\] 'y': "
                       r"cannot allocate the data of a blob of shape "
                       r"\(1000, 1000000000\): 4000000000000 bytes"):
        net.reshape()


def test_cli_one_line(tmp_path, capsys):
    path = tmp_path / "net.prototxt"
    path.write_text(HUGE_INPUT)
    assert cli_main(["time", "-model", str(path), "-iterations", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("recaffe: error: Input layer 'in': top[0] 'x': cannot "
                              "allocate the data of a blob of shape (1000000, 1000000)")
