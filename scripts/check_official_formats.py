"""Convert every file `official_formats_tf.py` wrote and check that msinet reads exactly the
weights TensorFlow saved (docs/official.md has the results).

    python scripts/check_official_formats.py shapes OUT/           # writes OUT/shapes.json
    <python with TensorFlow> scripts/official_formats_tf.py OUT/shapes.json OUT/
    python scripts/check_official_formats.py check OUT/
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from msinet.weights.official import convert
from msinet.weights.official.mapping import expected_tf_shapes, expected_variables
from msinet.weights.torch_io import load_model

SOURCES = ("frozen.pb", "tf1.ckpt", "tf2_variables", "tf2_frozen", "keras_export")


def main() -> int:
    action, out = sys.argv[1], Path(sys.argv[2])
    if action == "shapes":
        out.mkdir(parents=True, exist_ok=True)
        shapes = {k: list(v) for k, v in expected_tf_shapes().items()}
        (out / "shapes.json").write_text(json.dumps(shapes))
        return 0
    weights = np.load(out / "weights.npz")
    failed = 0
    for name in SOURCES:
        try:
            convert(out / name, out / f"{name}.safetensors", "salicon")
        except Exception as e:  # report and go on
            print(f"{name:16} FAILED: {e}"[:300])
            failed += 1
            continue
        state = {
            k: v.numpy() for k, v in load_model(out / f"{name}.safetensors").state_dict().items()
        }
        diff = max(
            float(np.abs(state[key] - (w.transpose(3, 2, 0, 1) if w.ndim == 4 else w)).max())
            for tf_name, key in expected_variables().items()
            for w in [weights[tf_name]]
        )
        print(f"{name:16} {len(state)} tensors, max |difference| {diff:g}")
        failed += diff != 0.0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
