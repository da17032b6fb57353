"""Load test of a running `msinet serve` on loopback, against the engine's offline numbers.

    msinet serve &                              # in another shell
    python benchmarks/load_test.py --concurrency 1 4 16 --seconds 20

Each client posts real OSIE images (PNG maps back at the image size) in a loop until the time is
up; requests are bounded by the duration and --max-requests. Reports throughput, latency
percentiles, the error rate, and the batch sizes the server formed (from its /metrics).

This machine's speed drifts by tens of percent from minute to minute, so the references the
issue-6 targets compare with are measured in the same minutes, in this process, on the same
images, while the server idles: each level runs --rounds rounds of (offline slice, server
slice). Offline: the server's engine (same engine, weights and threads) at its best of batch 1,
batch 4 and batch-1 calls side by side as the server makes them under load (as `msinet bench`),
its single-image time, and the server's own per-image CPU work (decode + preprocess, map back +
PNG encode).
Targets: at 16 clients, images/s >= 90% of the offline best; at 1 client, p50 <= 1.15 x
(single-image time + per-image work).
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

from msinet.engine import load_engine, under_load
from msinet.evaluation.bench import calls_per_s, median_seconds
from msinet.pipeline import Pipeline, resolve
from msinet.server.observability import Metrics
from msinet.server.service import Options, SaliencyService
from msinet.server.settings import Settings

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def batch_histogram(metrics_text: str) -> tuple[float, float]:
    """(number of model calls, images) from the msinet_batch_size histogram."""
    count = re.search(r"^msinet_batch_size_count (\S+)$", metrics_text, re.M)
    total = re.search(r"^msinet_batch_size_sum (\S+)$", metrics_text, re.M)
    return (float(count[1]) if count else 0.0, float(total[1]) if total else 0.0)


class Offline:
    """The server's engine and per-image work, run in this process without HTTP."""

    def __init__(self, engine: str, threads: int | None, images: list[bytes]) -> None:
        settings = Settings(engine=engine, threads=threads)
        self.service = SaliencyService(settings, Metrics())
        self.engine = load_engine(*resolve(settings.weights, settings.engine), settings.threads)
        self.service.pipeline = Pipeline(self.engine, settings.size, settings.max_pixels)
        prepared = [self.service.prepare(d) for d in images]
        inputs = [x for _, x, _ in prepared]
        # the maps once: each round re-times only the per-image work around the model
        maps = [self.engine.predict(x[None])[0] for x in inputs]
        self.cases = [
            (d, image, geometry, m)
            for d, (image, _, geometry), m in zip(images, prepared, maps, strict=True)
        ]
        self.one, self.four = np.stack(inputs[:1]), np.stack(inputs[:4])
        self.narrow, self.calls = under_load(self.engine)

    def measure(self, seconds: float) -> dict[str, float]:
        def one():
            self.engine.predict(self.one)

        def four():
            self.engine.predict(self.four)

        def side_by_side():
            (self.narrow or self.engine).predict(self.one)

        rates = {"b1": calls_per_s(one, seconds=seconds),
                 "b4": 4 * calls_per_s(four, seconds=seconds),
                 f"{self.calls} calls": calls_per_s(side_by_side, calls=self.calls,
                                                    seconds=seconds)}  # fmt: skip
        work = []
        for data, image, geometry, m in self.cases:
            t = time.perf_counter()
            self.service.prepare(data)
            self.service.encode(image, m, geometry, Options())
            work.append(time.perf_counter() - t)
        return {**{f"{k} ips": v for k, v in rates.items()},
                "single_ms": median_seconds(one, runs=5, warmup=0) * 1e3,
                "work_ms": float(np.median(work)) * 1e3}  # fmt: skip


async def client_loop(client, images, deadline, latencies, errors, budget, path="/v1/saliency"):
    """One client: posts images back to back to `path`; after a 503 it waits as Retry-After
    says (a polite client), so refusals measure admission, not a retry storm."""
    i = 0
    while time.perf_counter() < deadline and budget[0] > 0:
        budget[0] -= 1
        data = images[i % len(images)]
        i += 1
        start = time.perf_counter()
        try:
            r = await client.post(path, files={"image": ("x.jpg", data, "image/jpeg")})
            status = r.status_code
        except httpx.HTTPError:
            status, r = 0, None
        seconds = time.perf_counter() - start
        if status == 200:
            latencies.append(seconds)
            continue
        errors.append((status, seconds))
        if status == 503 and r is not None:
            retry = float(r.headers.get("retry-after", "1"))
            await asyncio.sleep(min(retry, max(0.0, deadline - time.perf_counter())))


async def server_slice(url, images, concurrency, seconds, budget) -> dict:
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        await client.post("/v1/saliency", files={"image": ("x.jpg", images[0], "image/jpeg")})
        calls0, imgs0 = batch_histogram((await client.get("/metrics")).text)
        latencies, errors = [], []
        start = time.perf_counter()
        deadline = start + seconds
        await asyncio.gather(*(client_loop(client, images, deadline, latencies, errors, budget)
                               for _ in range(concurrency)))  # fmt: skip
        wall = time.perf_counter() - start
        calls1, imgs1 = batch_histogram((await client.get("/metrics")).text)
    return {"latencies": latencies, "errors": errors, "wall": wall,
            "calls": calls1 - calls0, "images": imgs1 - imgs0}  # fmt: skip


def run_level(url, images, offline, concurrency, seconds, rounds, max_requests) -> dict:
    budget = [max_requests]
    refs, slices = [], []
    for _ in range(rounds):
        refs.append(offline.measure(seconds / rounds / 3))
        slices.append(asyncio.run(server_slice(url, images, concurrency, seconds / rounds, budget)))
    latencies = [x for s in slices for x in s["latencies"]]
    failed = [e for s in slices for e in s["errors"]]
    n, errors = len(latencies), len(failed)
    by_status = {
        code: sum(1 for c, _ in failed if c == code) for code in sorted({c for c, _ in failed})
    }
    slowest = {code: max(t for c, t in failed if c == code) for code in by_status}
    ms = np.array(latencies) * 1e3 if n else np.array([np.nan])
    calls = sum(s["calls"] for s in slices)
    throughput = n / sum(s["wall"] for s in slices)
    # the best configuration by its mean over the rounds (a per-round max would favour noise)
    means = {k: float(np.mean([r[k] for r in refs])) for k in refs[0] if k.endswith(" ips")}
    best_of = max(means, key=means.get)
    best = means[best_of]
    engine_plus_work = float(np.mean([r["single_ms"] + r["work_ms"] for r in refs]))
    p50 = float(np.percentile(ms, 50))
    return {
        "concurrency": concurrency,
        "requests": n + errors,
        "throughput": throughput,
        "p50_ms": p50,
        "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)),
        "error_rate": errors / max(1, n + errors),
        "by_status": by_status,  # 0: connection failed
        "slowest_s_by_status": slowest,
        "mean_batch": sum(s["images"] for s in slices) / calls if calls else float("nan"),
        "offline_best_ips": best,
        "offline_best_of": best_of.removesuffix(" ips"),
        "offline_ips": means,
        "rounds": [
            {**r, "server_ips": len(s["latencies"]) / s["wall"]}
            for r, s in zip(refs, slices, strict=True)
        ],
        "of_offline_best": throughput / best,
        "engine_plus_work_ms": engine_plus_work,
        "p50_over_engine_plus_work": p50 / engine_plus_work,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:8000")
    ap.add_argument("--root", default=str(Path(__file__).parents[2] / "shared/data/osie"))
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--seconds", type=float, default=20.0, help="server load per level")
    ap.add_argument("--rounds", type=int, default=4, help="offline/server alternations per level")
    ap.add_argument("--max-requests", type=int, default=5000, help="per level, a hard bound")
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--threads", type=int, help="the server's --threads (default: all cores)")
    ap.add_argument("--pid", type=int, help="the server's process: report its peak memory")
    ap.add_argument("--json")
    args = ap.parse_args()
    if urlparse(args.url).hostname not in LOOPBACK:
        raise SystemExit("load tests target this machine's loopback only")
    stimuli = sorted((Path(args.root) / "stimuli").glob("*.jpg"))[-args.images :]
    if not stimuli:
        raise SystemExit(f"no OSIE images under {args.root}/stimuli")
    images = [p.read_bytes() for p in stimuli]
    ready = httpx.get(f"{args.url}/readyz").json()
    offline = Offline(ready["engine"], args.threads, images)
    rows = [run_level(args.url, images, offline, c, args.seconds, args.rounds, args.max_requests)
            for c in args.concurrency]  # fmt: skip
    print(
        f"# {args.url} engine={ready['engine']}; {args.seconds:g} s per level in {args.rounds} "
        f"rounds; OSIE 800x600 JPEG in, 8-bit PNG map out; offline references measured "
        f"between the rounds"
    )
    print(
        f"{'clients':>7} | {'req':>5} | {'img/s':>6} | {'p50 ms':>7} | {'p95 ms':>7} | "
        f"{'p99 ms':>7} | {'errors':>6} | {'mean batch':>10} | {'offline best':>12} | "
        f"{'of best':>7} | {'engine+work ms':>14} | {'p50 / that':>10}"
    )
    for r in rows:
        print(
            f"{r['concurrency']:>7} | {r['requests']:>5} | {r['throughput']:>6.2f} | "
            f"{r['p50_ms']:>7.0f} | {r['p95_ms']:>7.0f} | {r['p99_ms']:>7.0f} | "
            f"{r['error_rate']:>6.1%} | {r['mean_batch']:>10.2f} | "
            f"{r['offline_best_ips']:>12.2f} | {r['of_offline_best']:>7.0%} | "
            f"{r['engine_plus_work_ms']:>14.0f} | {r['p50_over_engine_plus_work']:>10.2f}"
        )
    for r in rows:
        codes = ", ".join(f"{k or 'conn'}: {v} (slowest {r['slowest_s_by_status'][k]:.1f} s)"
                          for k, v in r["by_status"].items()) or "none"  # fmt: skip
        print(f"# {r['concurrency']} clients, refusals by status: {codes}")
    if args.pid:
        status = Path(f"/proc/{args.pid}/status").read_text().splitlines()
        peak = next(x for x in status if x.startswith("VmHWM:")).split()[1]
        print(f"# server peak RSS (VmHWM): {int(peak) / 1024:.0f} MB")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
