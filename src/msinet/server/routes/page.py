"""GET /: a single self-contained page (no CDN; works offline)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from msinet.imaging.postprocess import colormap_lut
from msinet.server.routes import settings_of

router = APIRouter(tags=["page"])
COLORMAPS = ("jet", "turbo", "inferno", "viridis", "magma", "gray")


@lru_cache(maxsize=2)
def render(key_required: bool) -> str:
    html = (Path(__file__).parents[1] / "static" / "index.html").read_text()
    luts = {name: colormap_lut(name).tolist() for name in COLORMAPS}
    html = html.replace("__LUTS__", json.dumps(luts, separators=(",", ":")))
    return html.replace("__KEY_REQUIRED__", "true" if key_required else "false")


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page(request: Request) -> HTMLResponse:
    return HTMLResponse(render(settings_of(request).api_key_env is not None))
