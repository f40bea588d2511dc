#!/usr/bin/env bash
# Install recaffe into .venv and run the main job: the talk's binary-addition RNN,
# trained on data it generates itself, to 100% bit accuracy on held-out pairs.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
exec .venv/bin/python examples/binary_addition/train.py "$@"
