"""Test kit shipped with recaffe, so users can test their own layers.

- :func:`check_gradient`: Caffe's numerical gradient check (float64 central
  differences, threshold on the relative error, optional kink skipping).
- :class:`LayerTestCase`: a pytest base class that gives a layer type the
  standard battery: forward against a plain-numpy reference, gradient check of
  bottoms and params, parameter-diff accumulation and ``propagate_down=False``.
"""

from recaffe.testing.gradient_check import GradientCheckError, check_gradient
from recaffe.testing.layer_test import LayerTestCase, make_blobs, make_layer

__all__ = [
    "GradientCheckError",
    "LayerTestCase",
    "check_gradient",
    "make_blobs",
    "make_layer",
]
