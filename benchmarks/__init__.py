"""Side-by-side speed comparisons (``python -m benchmarks [rnn|lstm|infer|blas|all]``).

Each measurement runs in its own subprocess (fair peak RSS, no thread pools or
caches shared between frameworks); see :mod:`benchmarks.common`.
"""
