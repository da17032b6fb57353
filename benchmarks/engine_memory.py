"""Peak memory and time per image of an engine call by batch size, each in a fresh process.

    python benchmarks/engine_memory.py --engine onnx-int8 --batches 1 2 4 8

What a server's batches cost: each batch size is run once after a warm-up call of one image;
the table gives the process's peak RSS, its rise over the warm process, and ms per image.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from msinet.engine.cpu import cpu_info

CHILD = """
import json, resource, sys, time
import numpy as np
import msinet
engine, batch, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
pipeline = msinet.load(engine=engine, threads=threads)
x = np.random.default_rng(0).random((1, 3, *pipeline.size)).astype(np.float32) * 255
pipeline.engine.predict(x)
warm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
xb = np.repeat(x, batch, 0)
t = time.perf_counter()
pipeline.engine.predict(xb)
seconds = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = {"warm_mb": warm / 1024, "peak_mb": peak / 1024, "ms_per_image": seconds * 1e3 / batch}
print(json.dumps(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--engine", default="onnx-int8")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    print(f"# CPU: {cpu_info().describe()}; engine {args.engine}, {args.threads} threads")
    print("| batch | peak RSS MB | over the warm process MB | per image MB | ms per image |")
    print("|---|---|---|---|---|")
    for b in args.batches:
        out = subprocess.run([sys.executable, "-c", CHILD, args.engine, str(b), str(args.threads)],
                             capture_output=True, text=True, check=True)  # fmt: skip
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rise = r["peak_mb"] - r["warm_mb"]
        print(
            f"| {b} | {r['peak_mb']:.0f} | {rise:.0f} | {rise / b:.0f} | {r['ms_per_image']:.0f} |"
        )


if __name__ == "__main__":
    main()
