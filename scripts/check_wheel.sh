#!/usr/bin/env bash
# What a new user gets from `pip install msinet[onnx]` (not editable): build the wheel, install
# it into a fresh venv outside the checkout, and predict a map with the shipped model.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
image=${1:-../shared/data/osie/stimuli/1501.jpg}
image=$(realpath "$image")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PYTHON" -m pip wheel --quiet --no-deps . -w "$work/dist"
wheel=$(ls "$work"/dist/msinet-*.whl)
size=$(stat -c %s "$wheel")
echo "wheel $(basename "$wheel"): $((size / 1000000)) MB"
[ "$size" -lt 100000000 ] || { echo "the wheel is over 100 MB"; exit 1; }
"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --upgrade pip
"$work/venv/bin/pip" install --quiet "${wheel}[onnx]"
cd "$work"  # nowhere near the checkout: the weights must come from the wheel
"$work/venv/bin/msinet" predict "$image" -o "$work/out" -q
"$work/venv/bin/python" - "$work/out" <<'PY'
import sys
from pathlib import Path
from PIL import Image
maps = list(Path(sys.argv[1]).glob("*.png"))
assert len(maps) == 1, maps
m = Image.open(maps[0])
assert m.mode == "L" and min(m.size) > 100, (m.mode, m.size)
print(f"wheel install predicts: {maps[0].name} {m.size[0]}x{m.size[1]}")
PY
if "$work/venv/bin/python" -c "import torch" 2>/dev/null; then echo "torch came with msinet[onnx]"; exit 1; fi
"$work/venv/bin/msinet" info > /dev/null
"$work/venv/bin/msinet" aoi "$image" --region centre=0.25,0.25,0.5,0.5 --json "$work/aoi.json" -q
"$work/venv/bin/python" -c "import json, sys; r = json.load(open(sys.argv[1]))['regions'][0]; \
assert 0 < r['share'] < 1, r; print(f\"wheel install measures an AOI: share {r['share']:.2f}\")" \
  "$work/aoi.json"
echo "wheel check passed"
