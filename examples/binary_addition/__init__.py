"""The talk's binary-addition RNN (installed as ``recaffe.examples.binary_addition``).

Run ``python examples/binary_addition/train.py`` from a checkout, or
``recaffe train -solver "$(python -m recaffe.examples binary_addition)"`` from an
installed recaffe.
"""
