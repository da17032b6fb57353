"""Peak memory of a running `msinet serve` under hostile images (issue 16): tiny files that
decode to huge arrays, sent at once, and what the server answers.

    msinet serve --port 8000 &
    python benchmarks/memory_bound.py --url http://127.0.0.1:8000 --pid $!
    python benchmarks/memory_bound.py --pid $! --path "/v1/saliency?overlay=true" \
        --only "1-bit PNG" --side 5600 --clients 2          # overlays (issue 28)
    python benchmarks/memory_bound.py --pid $! --path "/v1/crop?aspect=1:1" --only "1-bit PNG"

Each round posts --clients copies of one image at the same moment: a 7000x7000 1-bit PNG (a
few KB that decodes to 49 MP), a 7000x7000 flat JPEG (a few hundred KB), and 1x40000 / 40000x1
PNG strips. Prints the statuses and the server's peak resident memory (VmHWM, which never
goes down: run the rounds from the lightest up, or one kind per server start).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import io
import platform
from pathlib import Path

import httpx
from PIL import Image

from msinet.cpu import cpu_info


def images(side: int = 7000) -> dict[str, tuple[bytes, str]]:
    out = {}
    bits = Image.new("1", (side, side), 0)
    bits.paste(1, (side // 7, side // 7, 3 * side // 7, 3 * side // 7))
    buf = io.BytesIO()
    bits.save(buf, "PNG", optimize=True)
    out[f"{side}x{side} 1-bit PNG"] = (buf.getvalue(), "image/png")
    buf = io.BytesIO()
    Image.new("RGB", (side, side), (120, 80, 40)).save(buf, "JPEG", quality=20)
    out[f"{side}x{side} flat JPEG"] = (buf.getvalue(), "image/jpeg")
    for size in ((1, 40000), (40000, 1)):
        buf = io.BytesIO()
        Image.new("L", size, 128).save(buf, "PNG")
        out[f"{size[0]}x{size[1]} PNG"] = (buf.getvalue(), "image/png")
    return out


def peak_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident MB of `pid`."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    fields = dict(line.split(":", 1) for line in status)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


async def round_of(url: str, data: bytes, ctype: str, clients: int,
                   path: str = "/v1/saliency") -> collections.Counter:  # fmt: skip
    async with httpx.AsyncClient(timeout=120) as c:
        rs = await asyncio.gather(*(c.post(f"{url}{path}", content=data,
                                           headers={"content-type": ctype})
                                    for _ in range(clients)), return_exceptions=True)  # fmt: skip
    return collections.Counter(getattr(r, "status_code", type(r).__name__) for r in rs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8000")
    ap.add_argument("--pid", type=int, required=True, help="the server's process id")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--path", default="/v1/saliency", help="route and query to post to")
    ap.add_argument("--only", default="", help="only the images whose name contains this")
    ap.add_argument("--side", type=int, default=7000, help="side of the square images")
    args = ap.parse_args()
    print(f"# {cpu_info().describe()}; python {platform.python_version()}")
    print(f"# idle: RSS {peak_mb(args.pid)[0]:.0f} MB, peak so far {peak_mb(args.pid)[1]:.0f} MB")
    print("| route | image | bytes | clients | answers | RSS after MB | peak RSS MB |")
    print("|---|---|---|---|---|---|---|")
    for name, (data, ctype) in images(args.side).items():
        if args.only not in name:
            continue
        answers = asyncio.run(round_of(args.url, data, ctype, args.clients, args.path))
        rss, peak = peak_mb(args.pid)
        text = ", ".join(f"{n} x {s}" for s, n in sorted(answers.items(), key=str))
        print(f"| {args.path} | {name} | {len(data)} | {args.clients} | {text} | {rss:.0f} | "
              f"{peak:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
