"""Average msinet weights files tensor by tensor (a "model soup", Wortsman et al., ICML 2022).

Fine-tunes of one file that end in the same basin average into a model that is often better
than either (weights/MODEL_CARD.md measures it). Tensors that are equal in every file, the
frozen encoder blocks, are copied bit for bit: the training cache is keyed by their bytes. The
first file's metadata and dtype are kept; `msinet export` then rewrites the metadata.

    .venv/bin/python scripts/average_weights.py -o OUT.safetensors A.safetensors B.safetensors
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from msinet.weights.store import WeightsError, load_arrays, save_arrays


def average(paths: list[str]) -> tuple[dict[str, np.ndarray], object]:
    loaded = [load_arrays(p) for p in paths]
    first, meta = loaded[0]
    for path, (tensors, _) in zip(paths[1:], loaded[1:], strict=True):
        shapes = {k: v.shape for k, v in tensors.items()}
        if shapes != {k: v.shape for k, v in first.items()}:
            raise WeightsError(f"{path}: not the same tensors and shapes as {paths[0]}")
    out = {}
    for key, ref in first.items():
        xs = [t[key].astype(np.float64) for t, _ in loaded]
        same = all(np.array_equal(x, xs[0]) for x in xs[1:])
        out[key] = ref if same else np.mean(xs, axis=0).astype(ref.dtype)
    return out, meta


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", help="msinet .safetensors files of one architecture")
    ap.add_argument("-o", "--out", required=True, help="the averaged file (must not exist)")
    args = ap.parse_args()
    if len(args.files) < 2:
        ap.error("give at least two files to average")
    if Path(args.out).exists():
        ap.error(f"{args.out} exists: nothing is overwritten")
    try:
        tensors, meta = average(args.files)
        print(save_arrays(args.out, tensors, meta))
    except (OSError, WeightsError) as e:
        print(f"average_weights: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
