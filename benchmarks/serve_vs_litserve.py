"""msinet serve against a minimal LitServe server on the same engine, started the same way and
alternated, under the same load (issue 21).

    python benchmarks/serve_vs_litserve.py --clients 1 4 16 --seconds 20 --rounds 2

Both servers are started by this script as child processes with `--threads` intra-op threads:
`msinet serve --engine onnx-int8` and `benchmarks/litserve_app.py` (msinet's pipeline, the int8
engine, LitServe's max_batch_size 4, batch_timeout 0.05, one worker). Each round starts one,
runs every client level on it, stops it, then the other (the order swaps every round, so drift
on a busy machine hits both). Clients post OSIE 800x600 JPEGs (multipart) back to back and get
the 8-bit PNG map. Memory: the server's whole process tree, sampled every 50 ms; RSS summed
over its processes, and PSS (shared pages split between processes, so LitServe's forked
processes are not counted twice).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from load_test import client_loop

from msinet.engine.cpu import cpu_info

HERE = Path(__file__).resolve().parent
SERVERS = {
    "msinet": {"path": "/v1/saliency", "ready": "/readyz"},
    "litserve": {"path": "/predict", "ready": "/health"},
}


def command(name: str, port: int, threads: int, extra: list[str]) -> list[str]:
    if name == "msinet":
        return [sys.executable, "-m", "msinet", "serve", "--engine", "onnx-int8", "--threads",
                str(threads), "--port", str(port), *extra]  # fmt: skip
    return [sys.executable, str(HERE / "litserve_app.py"), "--port", str(port), "--threads",
            str(threads), *extra]  # fmt: skip


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def memory(pids: list[int]) -> tuple[int, int]:
    """(RSS, PSS) in bytes, summed over the processes."""
    rss = pss = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1]) * 1024
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1]) * 1024
        except OSError:
            continue
    return rss, pss


class Peak:
    """The largest tree RSS and PSS while running (a sampling thread). The tree is listed once:
    a ready server starts no more processes, and scanning /proc every 50 ms would take CPU from
    the servers being measured."""

    def __init__(self, pid: int) -> None:
        self.pids, self.rss, self.pss = tree(pid), 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            rss, pss = memory(self.pids)
            self.rss, self.pss = max(self.rss, rss), max(self.pss, pss)

    def __enter__(self) -> Peak:
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join()


def start(name: str, port: int, threads: int, extra: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(command(name, port, threads, extra), env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    url = f"http://127.0.0.1:{port}{SERVERS[name]['ready']}"
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop(proc)
    raise SystemExit(f"{name} did not become ready in 180 s")


def stop(proc: subprocess.Popen) -> None:
    with_children = os.getpgid(proc.pid)
    os.killpg(with_children, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(with_children, signal.SIGKILL)
        proc.wait()


async def load(url: str, path: str, images: list[bytes], clients: int, seconds: float) -> dict:
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        for data in images[:2]:  # warm: the first requests of a fresh server are not measured
            await client.post(path, files={"image": ("x.jpg", data, "image/jpeg")})
        latencies, errors, budget = [], [], [10**9]
        t0 = time.perf_counter()
        deadline = t0 + seconds
        await asyncio.gather(*(client_loop(client, images, deadline, latencies, errors, budget,
                                           path) for _ in range(clients)))  # fmt: skip
        wall = time.perf_counter() - t0
    return {"ok": len(latencies), "errors": len(errors), "wall": wall,
            "ips": len(latencies) / wall, "latencies_ms": [x * 1e3 for x in latencies]}  # fmt: skip


async def breakdown(url: str, images: list[bytes], n: int) -> dict[str, list[float]]:
    """One client, `n` requests one after another: the client's time and msinet's stages
    (its Server-Timing header), ms."""
    stages: dict[str, list[float]] = {}
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        for i in range(n):
            t0 = time.perf_counter()
            r = await client.post("/v1/saliency", files={"image": ("x.jpg", images[i % len(images)],
                                                                   "image/jpeg")})  # fmt: skip
            total = (time.perf_counter() - t0) * 1e3
            parts = dict(p.split(";dur=") for p in r.headers["server-timing"].split(", "))
            for k, v in {**{k: float(v) for k, v in parts.items()}, "client": total}.items():
                stages.setdefault(k, []).append(v)
    inside = np.sum([stages[k] for k in stages if k != "client"], axis=0)
    stages["outside the stages"] = list(np.array(stages["client"]) - inside)
    return stages


def run(args: argparse.Namespace, images: list[bytes]) -> dict[str, dict[int, list[dict]]]:
    results: dict[str, dict[int, list[dict]]] = {n: {c: [] for c in args.clients} for n in SERVERS}
    order = args.servers
    for r in range(args.rounds):
        for name in order if r % 2 == 0 else order[::-1]:
            port = args.port + (0 if name == "msinet" else 1)
            extra = args.msinet_args if name == "msinet" else args.litserve_args
            proc = start(name, port, args.threads, extra.split())
            try:
                idle = memory(tree(proc.pid))
                for clients in args.clients:
                    with Peak(proc.pid) as peak:
                        out = asyncio.run(load(f"http://127.0.0.1:{port}", SERVERS[name]["path"],
                                               images, clients, args.seconds))  # fmt: skip
                    out.update(peak_rss=peak.rss, peak_pss=peak.pss, idle_rss=idle[0],
                               idle_pss=idle[1])  # fmt: skip
                    results[name][clients].append(out)
                    print(f"round {r + 1} {name:>8} {clients:>3} clients: {out['ips']:.2f} img/s, "
                          f"p50 {np.median(out['latencies_ms']):.0f} ms, {out['errors']} errors, "
                          f"peak RSS {peak.rss / 2**20:.0f} MB, PSS {peak.pss / 2**20:.0f} MB",
                          file=sys.stderr, flush=True)  # fmt: skip
                if name == "msinet":
                    url = f"http://127.0.0.1:{port}"
                    for k, v in asyncio.run(breakdown(url, images, 20)).items():
                        args.stages.setdefault(k, []).extend(v)
            finally:
                stop(proc)
    return results


def span(values: list[float], fmt: str = "{:.2f}") -> str:
    lo, hi = min(values), max(values)
    return (
        fmt.format(lo) if fmt.format(lo) == fmt.format(hi) else f"{fmt.format(lo)}-{fmt.format(hi)}"
    )


def table(results: dict[str, dict[int, list[dict]]], args: argparse.Namespace) -> str:
    lines = [
        f"# CPU: {cpu_info().describe()}",
        f"# {args.rounds} rounds x {args.seconds:g} s per level, --threads {args.threads}, "
        f"{len(args.images)} OSIE JPEGs (800x600) in, PNG maps out; msinet serve defaults"
        + (f" with {args.msinet_args}" if args.msinet_args else "")
        + (f"; litserve_app.py {args.litserve_args}" if args.litserve_args else ""),
        "| clients | server | img/s | p50 ms | p95 ms | errors | peak RSS MB | peak PSS MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for clients in args.clients:
        for name in args.servers:
            runs = results[name][clients]
            lines.append(
                f"| {clients} | {name} | {span([r['ips'] for r in runs])} | "
                f"{span([float(np.median(r['latencies_ms'])) for r in runs], '{:.0f}')} | "
                f"{span([float(np.percentile(r['latencies_ms'], 95)) for r in runs], '{:.0f}')} | "
                f"{sum(r['errors'] for r in runs)} | "
                f"{span([r['peak_rss'] / 2**20 for r in runs], '{:.0f}')} | "
                f"{span([r['peak_pss'] / 2**20 for r in runs], '{:.0f}')} |"
            )
    if args.stages:
        medians = [f"{np.median(v):.1f}" for v in args.stages.values()]
        lines += [
            "",
            "msinet, one client, requests one after another: median ms per stage (Server-Timing)",
            "| " + " | ".join(args.stages) + " |",
            "|---" * len(args.stages) + "|",
            "| " + " | ".join(medians) + " |",
        ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--root", default=str(HERE.parents[1] / "shared/data/osie"))
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--seconds", type=float, default=20.0, help="per level and round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--port", type=int, default=8100)
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--servers", nargs="+", choices=list(SERVERS), default=list(SERVERS))
    ap.add_argument("--msinet-args", default="", help="more `msinet serve` flags, e.g. to compare "
                    "its settings")  # fmt: skip
    ap.add_argument("--litserve-args", default="", help="more `litserve_app.py` flags, e.g. "
                    "--workers 2")  # fmt: skip
    ap.add_argument("--json")
    args = ap.parse_args()
    stimuli = sorted((Path(args.root) / "stimuli").glob("*.jpg"))[-args.images :]
    if not stimuli:
        raise SystemExit(f"no OSIE images under {args.root}/stimuli")
    args.images = [p.read_bytes() for p in stimuli]
    args.stages = {}
    print(f"# CPU: {cpu_info().describe()}", file=sys.stderr)
    results = run(args, args.images)
    print(table(results, args))
    if args.json:
        Path(args.json).write_text(json.dumps(results))


if __name__ == "__main__":
    main()
