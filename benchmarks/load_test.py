"""Load test of a running `msinet serve` on loopback: N concurrent clients, fixed duration.

    msinet serve --engine onnx-int8 &          # in another shell
    python benchmarks/load_test.py --url http://127.0.0.1:8000 --concurrency 1 4 16 --seconds 20

Each client posts real OSIE images (PNG maps back at the image size) in a loop until the time is
up; requests are bounded by the duration and --max-requests. Reports throughput, latency
percentiles, the error rate, and the batch sizes the server formed (from its /metrics).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def batch_histogram(metrics_text: str) -> tuple[float, float]:
    """(number of model calls, images) from the msinet_batch_size histogram."""
    count = re.search(r"^msinet_batch_size_count (\S+)$", metrics_text, re.M)
    total = re.search(r"^msinet_batch_size_sum (\S+)$", metrics_text, re.M)
    return (float(count[1]) if count else 0.0, float(total[1]) if total else 0.0)


async def client_loop(client, images, deadline, latencies, errors, budget):
    i = 0
    while time.perf_counter() < deadline and budget[0] > 0:
        budget[0] -= 1
        data = images[i % len(images)]
        i += 1
        start = time.perf_counter()
        try:
            r = await client.post("/v1/saliency", files={"image": ("x.jpg", data, "image/jpeg")})
            ok = r.status_code == 200
        except httpx.HTTPError:
            ok = False
        (latencies if ok else errors).append(time.perf_counter() - start)


async def run_level(url, images, concurrency, seconds, max_requests):
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        await client.post("/v1/saliency", files={"image": ("x.jpg", images[0], "image/jpeg")})
        calls0, imgs0 = batch_histogram((await client.get("/metrics")).text)
        latencies, errors, budget = [], [], [max_requests]
        start = time.perf_counter()
        deadline = start + seconds
        await asyncio.gather(*(client_loop(client, images, deadline, latencies, errors, budget)
                               for _ in range(concurrency)))  # fmt: skip
        wall = time.perf_counter() - start
        calls1, imgs1 = batch_histogram((await client.get("/metrics")).text)
    n = len(latencies)
    ms = np.array(latencies) * 1e3 if n else np.array([np.nan])
    calls = calls1 - calls0
    return {
        "concurrency": concurrency,
        "requests": n + len(errors),
        "throughput": n / wall,
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)),
        "error_rate": len(errors) / max(1, n + len(errors)),
        "mean_batch": (imgs1 - imgs0) / calls if calls else float("nan"),
        "model_calls": int(calls),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:8000")
    ap.add_argument("--root", default=str(Path(__file__).parents[2] / "shared/data/osie"))
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--max-requests", type=int, default=5000, help="per level, a hard bound")
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--json")
    args = ap.parse_args()
    if urlparse(args.url).hostname not in LOOPBACK:
        raise SystemExit("load tests target this machine's loopback only")
    stimuli = sorted((Path(args.root) / "stimuli").glob("*.jpg"))[-args.images :]
    images = [p.read_bytes() for p in stimuli]
    rows = [asyncio.run(run_level(args.url, images, c, args.seconds, args.max_requests))
            for c in args.concurrency]  # fmt: skip
    ready = httpx.get(f"{args.url}/readyz").json()
    print(
        f"# {args.url} engine={ready.get('engine')}; {args.seconds:g} s per level; "
        f"OSIE 800x600 JPEG in, 8-bit PNG map out"
    )
    print(
        f"{'clients':>7} | {'req':>5} | {'img/s':>6} | {'p50 ms':>7} | {'p95 ms':>7} | "
        f"{'p99 ms':>7} | {'errors':>6} | {'mean batch':>10}"
    )
    for r in rows:
        print(
            f"{r['concurrency']:>7} | {r['requests']:>5} | {r['throughput']:>6.2f} | "
            f"{r['p50_ms']:>7.0f} | {r['p95_ms']:>7.0f} | {r['p99_ms']:>7.0f} | "
            f"{r['error_rate']:>6.1%} | {r['mean_batch']:>10.2f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
