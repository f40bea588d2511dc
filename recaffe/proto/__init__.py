"""Protocol-buffer schema of recaffe (wire/text compatible with BVLC Caffe).

``caffe.proto`` in this directory is the schema; ``caffe_pb2`` is generated
from it by ``tools/gen_proto.py`` (do not edit it by hand)::

    from recaffe.proto import caffe_pb2
    net = caffe_pb2.NetParameter()
"""

from . import caffe_pb2
from .text import install as _install
from .text import message_to_text

_install(caffe_pb2)

__all__ = ["caffe_pb2", "message_to_text"]
