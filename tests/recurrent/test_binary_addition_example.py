"""The binary-addition example trains to 100% on held-out additions."""

from __future__ import annotations

import importlib.util
import os

EXAMPLE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..",
                                       "examples", "binary_addition"))
_spec = importlib.util.spec_from_file_location("binary_addition_train",
                                               os.path.join(EXAMPLE, "train.py"))
ba_train = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ba_train)
ba_data = ba_train.ba_data


def test_data_encoding_round_trips():
    data, label = ba_data.encode([93, 255], [43, 255])
    assert data.shape == (2, 1, 1, 18) and label.shape == (2, 9)
    assert list(ba_data.decode(data[:, 0, 0, 0::2])) == [93, 255]
    assert list(ba_data.decode(data[:, 0, 0, 1::2])) == [43, 255]
    assert list(ba_data.decode(label)) == [136, 510]
    (ta, tb), (sa, sb) = ba_data.make_pairs(300, 100, seed=2)
    assert not set(zip(ta, tb, strict=True)) & set(zip(sa, sb, strict=True))


def test_unrolled_net_reaches_100_percent(tmp_path, capsys):
    rc = ba_train.main(["--outdir", str(tmp_path), "--iters", "3000", "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "held-out bit accuracy 100.00%" in out
    assert " + " in out.splitlines()[0]


def test_manual_net_trains_too(tmp_path, capsys):
    rc = ba_train.main(["--outdir", str(tmp_path), "--manual", "--iters", "3000",
                        "--quiet"])
    assert rc == 0, capsys.readouterr().out
