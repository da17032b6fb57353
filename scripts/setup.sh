#!/usr/bin/env bash
# One command that sets everything up: a virtual environment in .venv with msinet (editable),
# the CPU build of PyTorch pinned by constraints.txt, and the test tools.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -d .venv ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".[torch,serve,ray,eval,official,video,pysaliency,dev]"
echo "msinet is set up in .venv: activate it with 'source .venv/bin/activate'"
