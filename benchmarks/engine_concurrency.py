"""Images per second of an engine by how its cores are used: intra-op threads per call x calls
at once x batch, each configuration in a fresh process, alternated over rounds.

    python benchmarks/engine_concurrency.py --engine onnx-int8 --seconds 20 --rounds 2

Why the server runs calls under load single-threaded, one per core (docs/serving.md): the
table gives img/s and CPU ms per image (user + system time of the process over the images).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np

from msinet.engine.cpu import cpu_info

CHILD = """
import json, resource, sys, threading, time
import numpy as np
import msinet
engine, threads, callers, batch, seconds = sys.argv[1], *map(int, sys.argv[2:5]), float(sys.argv[5])
pipeline = msinet.load(engine=engine, threads=threads)
x = np.random.default_rng(0).random((batch, 3, *pipeline.size)).astype(np.float32) * 255
pipeline.engine.predict(x)
done, lock = [0], threading.Lock()
deadline = time.perf_counter() + seconds

def work():
    while time.perf_counter() < deadline:
        pipeline.engine.predict(x)
        with lock:
            done[0] += batch

r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
workers = [threading.Thread(target=work) for _ in range(callers)]
for w in workers:
    w.start()
for w in workers:
    w.join()
wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
cpu = r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime
print(json.dumps({"ips": done[0] / wall, "cpu_ms": cpu * 1e3 / done[0]}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--engine", default="onnx-int8")
    ap.add_argument("--configs", nargs="+", default=["2x1x1", "2x1x2", "1x2x1", "1x2x2", "2x2x2"],
                    help="THREADSxCALLSxBATCH")  # fmt: skip
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    configs = [tuple(int(v) for v in c.split("x")) for c in args.configs]
    results: dict[tuple[int, ...], list[dict]] = {c: [] for c in configs}
    for r in range(args.rounds):
        for c in configs if r % 2 == 0 else configs[::-1]:
            out = subprocess.run([sys.executable, "-c", CHILD, args.engine, *map(str, c),
                                  str(args.seconds)], capture_output=True, text=True,
                                 check=True)  # fmt: skip
            results[c].append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"# CPU: {cpu_info().describe()}; engine {args.engine}, {args.rounds} rounds x "
          f"{args.seconds:g} s, configurations alternated")  # fmt: skip
    print("| threads per call | calls at once | batch | img/s | mean | CPU ms per image |")
    print("|---|---|---|---|---|---|")
    for c, runs in results.items():
        ips = [r["ips"] for r in runs]
        cpu = np.mean([r["cpu_ms"] for r in runs])
        spread = f"{min(ips):.2f}-{max(ips):.2f}" if len(ips) > 1 else f"{ips[0]:.2f}"
        print(f"| {c[0]} | {c[1]} | {c[2]} | {spread} | {np.mean(ips):.2f} | {cpu:.0f} |")


if __name__ == "__main__":
    main()
