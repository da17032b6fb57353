#!/usr/bin/env bash
# One command that sets everything up: a virtual environment in .venv with msinet (editable),
# the CPU build of PyTorch pinned by constraints.txt, and the test tools.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -d .venv ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".[torch,serve,ray,eval,official,video,pysaliency,dev]"
# src/ on sys.path as well: the editable install's finder runs after Python's path scan, so from
# the folder above a checkout named msinet (where ../shared lives) `import msinet`, in a script
# or in Ray's workers, found the checkout as an empty namespace package.
site=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
echo "$PWD/src" > "$site/msinet-src.pth"
echo "msinet is set up in .venv: activate it with 'source .venv/bin/activate'"
