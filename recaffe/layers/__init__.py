"""Built-in layer types, one per module (stem = Caffe's file stem).

Modules register themselves with :func:`recaffe.layer.register_layer`; the
registry imports every module here on first use.
"""
