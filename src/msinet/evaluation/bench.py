"""`msinet bench`: speed, memory and fidelity of every engine, measured in one run.

Each engine runs in its own subprocess (so its peak RSS and load time are its own) on the same
preprocessed OSIE images; fidelity compares each engine's maps with fp32's on the same images
(torch, or fp32 ONNX Runtime where torch is not installed): CC between maps, max |difference|,
and the change in NSS against real fixations. The CPU's model and ISA head the table: int8
speed and exactness depend on them (msinet.engine.cpu).

Throughput is measured three ways, one image per call (b1), four per call (b4), and b1 calls
side by side as `msinet serve` runs them under load (`engine.under_load`: ONNX Runtime, one
single-threaded call per thread; torch, two calls on the engine); the best of the three is the
engine's offline best.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def median_seconds(fn, runs: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def calls_per_s(fn, calls: int = 1, runs: int = 0, seconds: float = 0.0) -> float:
    """Calls of `fn` per second from `calls` threads at once, each making `runs` calls or
    calling for `seconds` (after one warm-up call each)."""
    from concurrent.futures import ThreadPoolExecutor

    def loop(_) -> int:
        n, end = 0, time.perf_counter() + seconds
        while (n < runs) if runs else (time.perf_counter() < end):
            fn()
            n += 1
        return n

    with ThreadPoolExecutor(calls) as pool:
        list(pool.map(lambda _: fn(), range(calls)))
        t = time.perf_counter()
        n = sum(pool.map(loop, range(calls)))
        return n / (time.perf_counter() - t)


def worker(engine: str, weights: str, images: list[str], runs: int, threads: int, out: str):
    """Measure one engine; write its maps (model size) and numbers to `out`."""
    t = time.perf_counter()
    from tqdm import tqdm

    from msinet.engine import load_engine, under_load
    from msinet.imaging.decode import load_image
    from msinet.imaging.preprocess import batch, preprocess

    e = load_engine(engine, weights, threads=threads)
    load_s = time.perf_counter() - t
    size = tuple(e.meta.training_size)
    with tqdm(total=2 * len(images) + 3, desc=f"bench {engine}", unit="step", leave=False) as bar:
        prepared = []
        for p in images:
            prepared.append(preprocess(load_image(p), size)[0])
            bar.update()
        maps = []
        for x in prepared:
            maps.append(e.predict(batch([x])))
            bar.update()
        maps = np.concatenate(maps)
        one, four = batch(prepared[:1]), batch(prepared[:4])
        b1 = median_seconds(lambda: e.predict(one), runs)
        bar.update()
        b4 = median_seconds(lambda: e.predict(four), runs)
        bar.update()
        narrow, calls = under_load(e)
        served = calls_per_s(lambda: (narrow or e).predict(one), calls=calls, runs=runs)
        bar.update()
    np.save(out + ".npy", maps)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    stats = {"engine": engine, "load_s": load_s, "b1_ms": b1 * 1e3, "b4_ms_per_image": b4 / 4e-3,
             "images_per_s_served": served, "peak_rss_mb": rss_mb, "running": e.name,
             "self_check": e.self_check.summary() if e.self_check else ""}  # fmt: skip
    Path(out + ".json").write_text(json.dumps(stats))


def fidelity(maps: np.ndarray, reference: np.ndarray, samples) -> dict[str, float]:
    from msinet.evaluation import metrics
    from msinet.imaging.postprocess import map_to_image

    ccs, diffs, dnss = [], [], []
    for m, r, s in zip(maps, reference, samples, strict=True):
        ccs.append(np.corrcoef(m.ravel(), r.ravel())[0, 1])
        diffs.append(np.abs(m - r).max())
        f = s.fixations.binary_map()
        a, b = map_to_image(m, f.shape), map_to_image(r, f.shape)
        dnss.append(metrics.nss(a, f) - metrics.nss(b, f))
    return {"cc_min": float(np.min(ccs)), "cc_mean": float(np.mean(ccs)),
            "max_abs_diff": float(np.max(diffs)), "nss_change_mean": float(np.mean(dnss)),
            "nss_change_mean_abs": float(abs(np.mean(dnss))),
            "nss_change_max": float(np.max(np.abs(dnss)))}  # fmt: skip


def run(args: argparse.Namespace) -> dict:
    from tqdm import tqdm

    from msinet.data import open_dataset
    from msinet.engine.cpu import cpu_info
    from msinet.pipeline import resolve

    samples = open_dataset("osie", args.root).samples("val")[: args.images]
    results, maps = [], {}
    reference = "torch" if "torch" in args.engines or torch_installed() else "onnx"
    engines = list(dict.fromkeys([*args.engines, reference]))  # the reference runs too
    with tempfile.TemporaryDirectory() as tmp:
        for engine in tqdm(engines, desc="msinet bench", unit="engine"):
            given = args.int8 if engine == "onnx-int8" else args.weights
            weights = str(resolve(given, engine)[1])  # the one engine rule, engine fixed
            out = str(Path(tmp) / engine)
            cmd = [sys.executable, "-m", "msinet.evaluation.bench", "--worker", engine,
                   "--weights", weights,
                   "--runs", str(args.runs), "--threads", str(args.threads), "--out", out,
                   "--paths", *[str(s.image) for s in samples]]  # fmt: skip
            subprocess.run(cmd, check=True)
            results.append(json.loads(Path(out + ".json").read_text()))
            maps[engine] = np.load(out + ".npy")
    base = next(r for r in results if r["engine"] == reference)
    for r in results:
        r["speedup_b1"] = base["b1_ms"] / r["b1_ms"]
        r["images_per_s_b1"] = 1e3 / r["b1_ms"]
        r["images_per_s_b4"] = 1e3 / r["b4_ms_per_image"]
        r["best_images_per_s"] = max(r["images_per_s_b1"], r["images_per_s_b4"],
                                     r["images_per_s_served"])  # fmt: skip
        r.update(fidelity(maps[r["engine"]], maps[base["engine"]], samples))
    return {
        "machine": cpu_info().describe(),
        "threads": args.threads,
        "input": "240x320",
        "runs": args.runs,
        "fidelity_images": len(samples),
        "reference": base["engine"],
        "results": results,
    }


def table(report: dict) -> str:
    cols = [("engine", "{:<10}"), ("load_s", "{:>7.2f}"), ("b1_ms", "{:>8.1f}"),
            ("images_per_s_b1", "{:>8.2f}"), ("b4_ms_per_image", "{:>9.1f}"),
            ("images_per_s_b4", "{:>8.2f}"), ("images_per_s_served", "{:>9.2f}"),
            ("best_images_per_s", "{:>8.2f}"), ("speedup_b1", "{:>7.2f}x"),
            ("peak_rss_mb", "{:>8.0f}"), ("cc_min", "{:>8.4f}"), ("max_abs_diff", "{:>8.4f}"),
            ("nss_change_mean_abs", "{:>8.4f}"), ("nss_change_max", "{:>8.4f}")]  # fmt: skip
    heads = ["engine", "load s", "ms b=1", "img/s b1", "ms/img b4", "img/s b4", "img/s served",
             "best img/s", "speedup",
             "RSS MB", "CC min", "max|d|", "|mean dNSS|", "max |dNSS|"]  # fmt: skip
    lines = [
        f"# {report['machine']}; {report['threads']} threads; input {report['input']}; "
        f"median of {report['runs']} after warm-up; fidelity vs {report['reference']} on "
        f"{report['fidelity_images']} OSIE val images",
        " | ".join(heads),
    ]
    for r in report["results"]:
        lines.append(" | ".join(fmt.format(r[k]) for k, fmt in cols))
    lines += [f"# {r['engine']}: {r['self_check']}" for r in report["results"] if r["self_check"]]
    return "\n".join(lines)


def torch_installed() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):  # blocked or broken: not usable
        return False


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """`msinet bench`'s flags (the CLI's subcommand and this module's worker processes)."""
    from msinet.engine import ENGINES

    ap.add_argument("--root", default=str(Path(__file__).resolve().parents[4] / "shared/data/osie"))
    ap.add_argument("--weights", help="msinet .safetensors (default: shipped)")
    ap.add_argument("--int8", help="int8 .onnx for onnx-int8 (default: shipped)")
    ap.add_argument(
        "--engines",
        nargs="+",
        choices=ENGINES,
        help="default: every engine installed (torch only with torch)",
    )
    ap.add_argument("--images", type=int, default=20, help="fidelity images (OSIE val)")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json", help="write the report here")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--paths", nargs="*", help=argparse.SUPPRESS)


def command(args: argparse.Namespace) -> int:
    from msinet.engine import ENGINES

    if not args.engines:
        args.engines = [e for e in ENGINES if e != "torch" or torch_installed()]
    if args.worker:
        worker(args.worker, args.weights, args.paths, args.runs, args.threads, args.out)
        return 0
    report = run(args)
    print(table(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    """The worker processes' entry point (`python -m msinet.evaluation.bench --worker ...`)."""
    ap = argparse.ArgumentParser(prog="msinet bench", description=__doc__)
    add_arguments(ap)
    return command(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
