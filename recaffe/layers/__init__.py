"""Built-in layer types, one per module (stem = Caffe's file stem).

Modules register themselves with :func:`recaffe.layer.register_layer`; the
registry imports every module here on first use.
"""


def __getattr__(name: str):
    """pycaffe's ``caffe.layers``: ``L.InnerProduct(x, ...)`` builds a NetSpec layer.

    Python consults this only for names the package does not define, so layer
    modules (``recaffe.layers.conv``) are unaffected.
    """
    from recaffe.net_spec import layer_type_attr  # noqa: PLC0415

    return layer_type_attr(name)
