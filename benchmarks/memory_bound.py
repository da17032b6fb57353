"""Peak memory of a running `msinet serve` under hostile requests on every route (issues 16
and 28): tiny files that decode to huge arrays, padded batch uploads, large v2 tensors, frames
on WebSockets; each kind alone, then all of them at once.

    msinet serve --port 8000 --api-key-env KEY &
    python benchmarks/memory_bound.py --url http://127.0.0.1:8000 --pid $! --key "$KEY"
    python benchmarks/memory_bound.py --pid $! --only overlay        # the rows whose name has it

Each row resets the server's peak (VmHWM, through /proc/PID/clear_refs) and prints the
answers, the seconds the slowest took, and the server's peak and current resident memory.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import io
import platform
import struct
import time
import urllib.parse
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from msinet.engine.cpu import cpu_info

# an attention report with two regions, as an image body's query
AOI_REGIONS = '{"logo": [0.1, 0.1, 0.2, 0.1], "cta": [0.6, 0.8, 0.3, 0.1]}'
AOI_PATH = "/v1/aoi?regions=" + urllib.parse.quote(AOI_REGIONS)


def one_bit_png(side: int) -> bytes:
    """A few KB that decode to side x side pixels."""
    bits = Image.new("1", (side, side), 0)
    bits.paste(1, (side // 7, side // 7, 3 * side // 7, 3 * side // 7))
    buf = io.BytesIO()
    bits.save(buf, "PNG", optimize=True)
    return buf.getvalue()


def flat_jpeg(side: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (side, side), (120, 80, 40)).save(buf, "JPEG", quality=20)
    return buf.getvalue()


def strip_png(size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("L", size, 128).save(buf, "PNG")
    return buf.getvalue()


def padded_png(size: int) -> bytes:
    """A 64x64 PNG grown to `size` bytes by a private ancillary chunk (valid, decodes small)."""
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (90, 140, 30)).save(buf, "PNG")
    png = buf.getvalue()
    pad = size - len(png) - 12
    chunk = struct.pack(">I", pad) + b"prVt" + b"\0" * pad
    chunk += struct.pack(">I", zlib.crc32(chunk[4:]) & 0xFFFFFFFF)
    return png[:-12] + chunk + png[-12:]


def memory(pid: int) -> tuple[float, float]:
    """(current, peak) resident MB of `pid`."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text()
                  .splitlines())  # fmt: skip
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


Request = Callable[[httpx.AsyncClient], Awaitable]


def cases(url: str, key: str | None) -> dict[str, list[Request]]:
    """Row name -> the requests sent at once (each a coroutine function of a client)."""
    png7000, png5600, jpeg7000 = one_bit_png(7000), one_bit_png(5600), flat_jpeg(7000)
    padded = padded_png(int(19.9 * 2**20))
    image = np.zeros((2048, 2560, 3), np.uint8).tobytes()
    v2 = ('{"inputs": [{"name": "image", "shape": [2048, 2560, 3], "datatype": "UINT8", '
          f'"parameters": {{"binary_data_size": {len(image)}}}}}]}}').encode()  # fmt: skip

    def post(path: str, data: bytes, ctype: str = "image/png") -> Request:
        return lambda c: c.post(path, content=data, headers={"content-type": ctype})

    def batch(c: httpx.AsyncClient):
        files = [("images", (f"{i}.png", padded, "image/png")) for i in range(16)]
        return c.post("/v1/saliency:batch", files=files)

    def infer(c: httpx.AsyncClient):
        return c.post("/v2/models/msinet/infer", content=v2 + image,
                      headers={"inference-header-content-length": str(len(v2))})  # fmt: skip

    async def stream(_c: httpx.AsyncClient) -> str:
        import websockets

        ws_url = url.replace("http", "ws", 1) + "/v1/stream"
        headers = {"x-api-key": key} if key else {}
        async with websockets.connect(ws_url, additional_headers=headers, max_size=None) as ws:
            await ws.send(png7000)
            answer = await ws.recv()
            return "frame" if isinstance(answer, bytes) else "error frame"

    rows = {
        "saliency 7000x7000 1-bit PNG x4": [post("/v1/saliency", png7000)] * 4,
        "saliency 7000x7000 flat JPEG x4": [post("/v1/saliency", jpeg7000, "image/jpeg")] * 4,
        "saliency 1x40000 and 40000x1 PNG x4": [
            post("/v1/saliency", strip_png((1, 40000))),
            post("/v1/saliency", strip_png((40000, 1))),
        ]
        * 2,
        "saliency 19.9 MB padded PNG x64": [post("/v1/saliency", padded)] * 64,
        "overlay 5600x5600 x2": [post("/v1/saliency?overlay=true", png5600)] * 2,
        "overlay 7000x7000 x1": [post("/v1/saliency?overlay=true", png7000)],
        "crop 7000x7000 JSON x2": [post("/v1/crop?aspect=1:1&aspect=9:16", png7000)] * 2,
        "crop 7000x7000 JPEG x1": [post("/v1/crop?aspect=16:9&format=jpeg", png7000)],
        "aoi 7000x7000 x2": [post(AOI_PATH, png7000)] * 2,
        "batch 16 x 19.9 MB padded PNG x6": [batch] * 6,
        "v2 binary 2048x2560 image x3": [infer] * 3,
        "stream 7000x7000 frame x4": [stream] * 4,
    }
    rows["all of the above at once"] = [r for rs in list(rows.values()) for r in rs]
    return rows


def outcome(r) -> str | int:
    if isinstance(r, BaseException):
        return type(r).__name__
    return r if isinstance(r, str) else r.status_code


async def round_of(url: str, key: str | None, requests: list[Request]) -> tuple[list, float]:
    headers = {"x-api-key": key} if key else {}
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=url, timeout=300, headers=headers,
                                 limits=limits) as c:  # fmt: skip
        start = time.perf_counter()

        async def timed(request: Request):
            try:
                return await request(c)
            finally:
                timed.slowest = time.perf_counter() - start

        timed.slowest = 0.0
        answers = await asyncio.gather(*(timed(r) for r in requests), return_exceptions=True)
        return answers, timed.slowest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8000")
    ap.add_argument("--pid", type=int, required=True, help="the server's process id")
    ap.add_argument("--key", default=None, help="the server's API key, if it has one")
    ap.add_argument("--only", default="", help="only the rows whose name contains this")
    args = ap.parse_args()
    print(f"# {cpu_info().describe()}; python {platform.python_version()}")
    print(f"# idle: RSS {memory(args.pid)[0]:.0f} MB")
    print("| requests at once | answers | slowest s | peak RSS MB | RSS after MB |")
    print("|---|---|---|---|---|")
    for name, requests in cases(args.url, args.key).items():
        if args.only not in name:
            continue
        Path(f"/proc/{args.pid}/clear_refs").write_text("5")  # the peak starts from now
        answers, slowest = asyncio.run(round_of(args.url, args.key, requests))
        rss, peak = memory(args.pid)
        counts = collections.Counter(map(outcome, answers))
        text = ", ".join(f"{n} x {s}" for s, n in sorted(counts.items(), key=str))
        print(f"| {name} | {text} | {slowest:.1f} | {peak:.0f} | {rss:.0f} |", flush=True)


if __name__ == "__main__":
    main()
