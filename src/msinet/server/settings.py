"""Server settings: CLI flags, or environment variables prefixed MSINET_ (MSINET_PORT=9000)."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from msinet.engine import ENGINES
from msinet.engine.device import DEVICE_HELP, parse_device
from msinet.imaging.decode import DEFAULT_MAX_PIXELS


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MSINET_")

    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(8000, description="port to listen on")
    engine: Literal[ENGINES] | None = Field(
        None, description="default: onnx-int8 for the shipped model, onnx for --weights"
    )
    device: str = Field("cpu", description=DEVICE_HELP)
    amp: Literal["bf16", "fp16"] | None = Field(None, description="torch engine: autocast "
                                               "(mixed precision, for GPUs)")  # fmt: skip
    weights: str | None = Field(None, description="msinet .safetensors or .onnx file "
                                "(default: the shipped model)")  # fmt: skip
    threads: int | None = Field(None, ge=1, description="intra-op threads per worker "
                                "(default: all cores)")  # fmt: skip
    workers: int = Field(1, ge=1, description="processes, one model instance each")
    # On CPUs a batch costs the engine ~40 MB per image and gains no speed (docs/serving.md):
    # two images per call, two calls at once, hold the memory of 16 clients under LitServe's
    max_batch_size: int = Field(2, ge=1, le=64, description="images per model call")
    max_wait_ms: float = Field(10.0, ge=0, description="how long a batch waits to fill after "
                               "its first image, while another call runs")  # fmt: skip
    # a lone call keeps every intra-op thread; under load each call takes one core of its own
    # (ONNX Runtime), which gets 6-10% more images per second out of them (docs/serving.md)
    inflight_batches: int | None = Field(None, ge=1, le=64, description="model calls at once "
                                         "(default: one per intra-op thread with ONNX Runtime, "
                                         "2 with torch)")  # fmt: skip
    max_queue: int = Field(64, ge=1, description="images waiting for the model; beyond: 503")
    request_timeout_s: float = Field(30.0, gt=0, description="per request; beyond: 504")
    max_upload_mb: float = Field(20.0, gt=0, description="request body; beyond: 413")
    max_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=1, description="image pixels; beyond: 413")
    # A preprocessed v2 tensor runs the model at its own size, and the model holds ~0.5 KB per
    # input pixel (1.4 GB at 2048x1280): its own, much smaller limit.
    max_model_pixels: int = Field(640 * 480, ge=64, description="H x W of one preprocessed v2 "
                                  "`images` tensor; beyond: 413")  # fmt: skip
    max_inflight_pixels: int = Field(64_000_000, ge=1, description="pixels of all images in "
                                     "flight, which bounds memory (docs/serving.md); beyond: "
                                     "503")  # fmt: skip
    max_inflight_upload_mb: float = Field(
        200.0, gt=0, description="request bodies of all requests in flight (a :batch counts the "
        "uploads it holds at once); beyond: 503 before a body is read")  # fmt: skip
    max_connections: int = Field(512, ge=1, description="open connections; beyond, the one "
                                 "idle the longest is closed, or 503 if all are busy")  # fmt: skip
    # A WebSocket holds its connection for as long as it is open and is never idle in the HTTP
    # sense: streams get a share of the connections and close when idle, so they cannot starve
    # HTTP (/healthz included).
    max_streams: int = Field(64, ge=1, description="open /v1/stream WebSockets; beyond, the "
                             "handshake is refused (HTTP 403)")  # fmt: skip
    stream_idle_s: float = Field(30.0, gt=0, description="a /v1/stream WebSocket with no frame "
                                 "for this long is closed")  # fmt: skip
    header_timeout_s: float = Field(10.0, gt=0, description="request headers must arrive "
                                    "within this; beyond: 408")  # fmt: skip
    body_timeout_s: float = Field(60.0, gt=0, description="a request body must arrive within "
                                  "this; beyond: 408")  # fmt: skip
    max_header_kb: float = Field(32.0, gt=0, description="request headers; beyond: 431")
    max_headers: int = Field(100, ge=1, description="request header fields; beyond: 431")
    max_batch_images: int = Field(16, ge=1, description="images in one /v1/saliency:batch")
    api_key_env: str | None = Field(None, description="require X-API-Key equal to this "
                                    "environment variable's value")  # fmt: skip
    public_routes: list[str] = Field(
        ["/", "/healthz", "/readyz", "/v2/health", "/docs", "/redoc", "/openapi.json",
         "/static-offline-docs"],
        description="path prefixes open without the API key (the rest need X-API-Key when "
        "--api-key-env is set)")  # fmt: skip
    cors_origins: list[str] = Field([], description="allowed CORS origins")
    size: str | None = Field(None, description="model input HxW or preset "
                             "(default: the weights' training size)")  # fmt: skip
    model_name: str = Field("msinet", description="model name in the v2 (Open Inference) API")

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        return parse_device(v)

    @property
    def api_key(self) -> str | None:
        if not self.api_key_env:
            return None
        key = os.environ.get(self.api_key_env)
        if not key:
            raise ValueError(f"--api-key-env {self.api_key_env} names an unset variable")
        return key

    @property
    def stream_cap(self) -> int:
        """Streams never hold more than a quarter of the connections."""
        return max(1, min(self.max_streams, self.max_connections // 4))

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def max_inflight_upload_bytes(self) -> int:
        return int(self.max_inflight_upload_mb * 1024 * 1024)
