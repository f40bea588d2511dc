"""cont indicators for packed sequences."""

from __future__ import annotations

import numpy as np
import pytest

from recaffe.errors import DataError
from recaffe.recurrent import cont_from_starts, sequence_cont


def test_sequence_cont_packs_sequences():
    cont = sequence_cont([[2, 3], [5], [1]], T=5, N=3)
    np.testing.assert_array_equal(cont.T, [[0, 1, 0, 1, 1],
                                           [0, 1, 1, 1, 1],
                                           [0, 0, 0, 0, 0]])
    assert cont.dtype == np.float32 and cont.shape == (5, 3)
    flat = sequence_cont([3, 2], T=3, N=2)
    np.testing.assert_array_equal(flat.T, [[0, 1, 1], [0, 1, 0]])


def test_sequence_cont_continued_streams():
    cont = sequence_cont([[2, 1], [3]], T=3, N=2, continued=[True, False])
    np.testing.assert_array_equal(cont.T, [[1, 1, 0], [0, 1, 1]])


def test_sequence_cont_errors():
    with pytest.raises(DataError, match="2 streams"):
        sequence_cont([[1]], T=3, N=2)
    with pytest.raises(DataError, match="more than T=3"):
        sequence_cont([[2, 2]], T=3, N=1)
    with pytest.raises(DataError, match="length 0"):
        sequence_cont([[0]], T=3, N=1)


def test_cont_from_starts():
    np.testing.assert_array_equal(cont_from_starts([[0, 2], [1]], T=3).T,
                                  [[0, 1, 0], [1, 0, 1]])
    starts = np.array([[True, False], [False, True]])
    np.testing.assert_array_equal(cont_from_starts(starts, T=2), [[0, 1], [1, 0]])
    with pytest.raises(DataError, match="outside"):
        cont_from_starts([[3]], T=3)
