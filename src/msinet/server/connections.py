"""Connection limits that uvicorn lacks, as its h11 protocol with three additions.

uvicorn picks httptools when it is installed, which takes headers of any size (100 MB of
headers took 33 s to parse, and `/healthz` waited meanwhile), and neither of its protocols
times out a request whose headers never finish: 1,100 slow connections used up the file
descriptors and every normal request failed. Here:

- headers over `max_header_bytes` get 431, and headers not complete `header_timeout_s` after
  their first byte (or after the connection opened) get 408, and the connection closes;
- at `max_connections`, a new connection closes the one idle the longest (no request running:
  a slow or keep-alive client), and only if every connection is busy is it refused with 503 —
  so slow clients cannot keep the real ones out;
- the soft file-descriptor limit is raised to fit `max_connections` where the hard one allows.

The body's read timeout and the header count are per request, checked in `guard.py`.
"""

from __future__ import annotations

import dataclasses
import logging
import resource
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from msinet.server.errors import raw_response

# seconds a refused connection keeps reading (and dropping) before it closes
LINGER_S = 2.0

# file descriptors beyond the connections: the listening socket, logs, model files, threads
SPARE_FDS = 64


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int = 512
    header_timeout_s: float = 10.0
    max_header_bytes: int = 32 * 1024

    @classmethod
    def of(cls, settings) -> ConnectionLimits:
        return cls(settings.max_connections, settings.header_timeout_s,
                   int(settings.max_header_kb * 1024))  # fmt: skip


class LimitedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the limits above (set once per process by `configure`)."""

    limits = ConnectionLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timer = None
        self.header_bytes = 0  # bytes of a request whose headers are not complete yet
        self.tail = b""  # the last bytes of those, where the end of the headers may begin
        self.lingering = False  # answered with an error, closing soon
        self.last_active = self.loop.time()

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections and not self.evict_idle():
            self.close_with(503, f"server is at its limit of {self.limits.max_connections} "
                                 "connections", {"retry-after": "1"})  # fmt: skip
            return
        self.arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self.cancel_header_timer()
        super().connection_lost(exc)

    def idle(self) -> bool:
        """No request running: waiting for headers, or kept alive between requests."""
        if self.lingering:
            return True
        running = self.cycle is not None and not self.cycle.response_complete
        return not running and self.conn.their_state in (h11.IDLE, h11.DONE, h11.MUST_CLOSE,
                                                          h11.CLOSED)  # fmt: skip

    def evict_idle(self) -> bool:
        idle = [c for c in self.connections
                if c is not self and isinstance(c, LimitedH11Protocol) and c.idle()
                and not c.transport.is_closing()]  # fmt: skip
        if not idle:
            return False
        oldest = min(idle, key=lambda c: c.last_active)
        oldest.close_with(None)
        return True

    def close_with(self, status: int | None, message: str = "",
                   headers: dict[str, str] | None = None) -> None:  # fmt: skip
        """Close, answering `status` first. After an answer the connection lingers, reading
        and dropping what the client still sends, for up to LINGER_S: closing a socket with
        unread data makes the kernel send a reset, which can destroy the answer in flight."""
        self.cancel_header_timer()
        if status is None:
            self.transport.close()
            return
        self.lingering = True
        self.transport.write(raw_response(status, message, headers))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_S, self.transport.close)

    def arm_header_timer(self) -> None:
        if self.header_timer is None:
            self.header_timer = self.loop.call_later(self.limits.header_timeout_s,
                                                     self.header_timeout)  # fmt: skip

    def cancel_header_timer(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def header_timeout(self) -> None:
        self.header_timer = None
        if self.transport.is_closing() or self.lingering or not self.idle():
            return  # gone, already answered, or a request is running
        if self.header_bytes:  # a request began and its headers did not finish
            self.close_with(408, f"request headers not complete within "
                                 f"{self.limits.header_timeout_s:g} s")  # fmt: skip
        else:  # opened and never used
            self.close_with(None)

    def data_received(self, data: bytes) -> None:
        if self.lingering:  # answered and closing: the rest is dropped
            return
        self.last_active = self.loop.time()
        if self.conn.their_state is h11.IDLE:  # reading a request's headers
            self.arm_header_timer()
            if self.headers_too_large(data):
                self.refuse_large_headers()
                return
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the headers are complete
            self.header_bytes, self.tail = 0, b""
            self.cancel_header_timer()

    def headers_too_large(self, data: bytes) -> bool:
        """Whether the headers, counted up to their end if `data` holds it, pass the limit.
        (h11's own limit applies only to headers still incomplete.)"""
        before = self.header_bytes
        self.header_bytes += len(data)
        seen, self.tail = self.tail + data, data[-3:]
        if self.header_bytes <= self.limits.max_header_bytes:
            return False
        end = seen.find(b"\r\n\r\n")
        size = self.header_bytes if end < 0 else before - (len(seen) - len(data)) + end + 4
        return size > self.limits.max_header_bytes

    def refuse_large_headers(self) -> None:
        self.close_with(431, f"request headers over the {self.limits.max_header_bytes}-byte "
                             "limit")  # fmt: skip

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self.last_active = self.loop.time()

    def send_400_response(self, msg: str) -> None:
        """h11 refuses malformed requests, and headers over its buffer size: both in the JSON
        error body, the latter as 431."""
        if self.header_bytes > self.limits.max_header_bytes:
            self.refuse_large_headers()
        else:
            self.close_with(400, f"malformed HTTP request: {msg}")


def configure(limits: ConnectionLimits) -> dict[str, Any]:
    """Set this process's limits; returns the uvicorn options that use them. Where the hard
    file-descriptor limit is below `max_connections`, the connections are capped to fit it (a
    process out of descriptors cannot even refuse a connection)."""
    fds = raise_fd_limit(limits.max_connections + SPARE_FDS)
    if fds < limits.max_connections + SPARE_FDS:
        fitted = max(1, fds - SPARE_FDS)
        logging.getLogger("uvicorn.error").warning(
            "max_connections %d lowered to %d: the file-descriptor limit is %d",
            limits.max_connections, fitted, fds)  # fmt: skip
        limits = dataclasses.replace(limits, max_connections=fitted)
    LimitedH11Protocol.limits = limits
    return {"http": LimitedH11Protocol, "h11_max_incomplete_event_size": limits.max_header_bytes}


def raise_fd_limit(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards `wanted` (not above the hard limit); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return target
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):  # above the kernel's nr_open
        return soft
    return target
