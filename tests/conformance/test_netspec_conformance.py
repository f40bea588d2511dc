"""NetSpec text against BVLC pycaffe's own output (conformance/netspec/).

Each function of ``netspec_cases.py`` runs with ``caffe`` bound to recaffe; the
printed ``NetParameter`` must equal pycaffe's file byte for byte.

Printing follows recaffe/proto/text.py: fields in declaration order (as the
runtime pycaffe used printed them) and Caffe's float formatting.
"""

import importlib.util
import sys

import pytest
from conformance_data import MANIFEST, ROOT
from google.protobuf import text_format

import recaffe
from recaffe.proto import caffe_pb2

NETSPEC_DIR = ROOT / "netspec"
CASES_FILE = NETSPEC_DIR / "netspec_cases.py"


def test_netspec_conformance_data_present():
    assert CASES_FILE.is_file(), f"NetSpec conformance data missing: {CASES_FILE}"
    assert len(MANIFEST["netspec"]) == 4, MANIFEST["netspec"]


class _CaffeAlias:
    """``sys.modules['caffe'] = recaffe`` for the duration of a with-block."""

    def __enter__(self):
        self.saved = sys.modules.get("caffe")
        sys.modules["caffe"] = recaffe
        return self

    def __exit__(self, *exc):
        if self.saved is None:
            sys.modules.pop("caffe", None)
        else:
            sys.modules["caffe"] = self.saved


@pytest.fixture(scope="module")
def cases_module():
    with _CaffeAlias():
        spec = importlib.util.spec_from_file_location("_netspec_cases", CASES_FILE)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module


def _case_names():
    return sorted(MANIFEST["netspec"])


def _run(cases_module, name):
    with _CaffeAlias():
        return cases_module.CASES[name]()


@pytest.mark.parametrize("name", _case_names())
def test_netspec_text_matches_pycaffe(cases_module, name):
    expected = (NETSPEC_DIR / f"{name}.prototxt").read_bytes()
    got = str(_run(cases_module, name)).encode()
    assert got == expected


@pytest.mark.parametrize("name", _case_names())
def test_netspec_message_matches_pycaffe(cases_module, name):
    expected = text_format.Parse((NETSPEC_DIR / f"{name}.prototxt").read_text(),
                                 caffe_pb2.NetParameter())
    got = _run(cases_module, name)
    assert got == expected
    # Same bytes when printed by the same runtime.
    assert str(got) == str(expected)
