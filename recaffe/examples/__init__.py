"""The shipped examples, importable from an installed recaffe.

``recaffe.examples.binary_addition`` is the repository's
``examples/binary_addition/`` folder: a wheel installs it here (setup.py maps
it), and in a checkout this package's path reaches that folder. ``python -m
recaffe.examples binary_addition [DIR]`` prepares the talk's example to run with
``recaffe train`` from anywhere (see ``__main__``).
"""

from __future__ import annotations

from pathlib import Path

# In a checkout (editable install) the examples live beside the package.
_CHECKOUT_EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
if (_CHECKOUT_EXAMPLES / "binary_addition" / "__init__.py").is_file():
    __path__.append(str(_CHECKOUT_EXAMPLES))  # noqa: F821 (package __path__)

#: Examples that ``python -m recaffe.examples`` can prepare.
EXAMPLES = ("binary_addition",)
