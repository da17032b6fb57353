"""Connection limits (issue 16), on a real uvicorn server over loopback sockets: oversized and
too many headers, slow headers and bodies, and more connections than allowed. A small app
stands in for the model (the limits act before any route runs); the JSON error body is the
service's own."""

import json
import socket
import time

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from msinet.server.connections import ConnectionLimits, LimitedH11Protocol, configure
from msinet.server.guard import RequestGuard
from tests.integration.conftest import served

LIMITS = ConnectionLimits(max_connections=6, header_timeout_s=0.6, max_header_bytes=2048)
BODY_TIMEOUT = 0.8


async def echo(request):
    return PlainTextResponse(f"{len(await request.body())}")


async def hello(request):
    return PlainTextResponse("ok")


async def slow(request):
    import asyncio

    await asyncio.sleep(float(request.query_params.get("s", "2")))
    return PlainTextResponse("slept")


@pytest.fixture(scope="module")
def server():
    app = Starlette(routes=[Route("/echo", echo, methods=["POST"]), Route("/hello", hello),
                            Route("/slow", slow)])  # fmt: skip
    guarded = RequestGuard(app, api_key=None, public=[], max_body=10_000, batch_body=10_000,
                           body_timeout=BODY_TIMEOUT, max_headers=20)  # fmt: skip
    before = LimitedH11Protocol.limits
    with served(guarded, **configure(LIMITS)) as port:
        yield port
    LimitedH11Protocol.limits = before


def connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_response(s: socket.socket) -> tuple[int, dict, bytes]:
    """(status, headers, body) of one response; status 0 if the server closed without one."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            return 0, {}, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    headers = {k.lower(): v for k, v in headers.items()}
    while len(body) < int(headers.get("content-length", 0)):
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def get(port: int, path: str = "/hello", extra: bytes = b"") -> tuple[int, dict, bytes]:
    with connect(port) as s:
        s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nhost: x\r\n" + extra + b"\r\n")
        return read_response(s)


def closed(s: socket.socket, within: float) -> bool:
    s.settimeout(within)
    try:
        while s.recv(65536):
            pass
        return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def error_of(body: bytes) -> dict:
    return json.loads(body)["error"]


def test_normal_request(server):
    status, _, body = get(server)
    assert (status, body) == (200, b"ok")


def test_oversized_headers_get_431_and_the_server_keeps_serving(server):
    status, headers, body = get(server, extra=b"x-big: " + b"a" * 10_000 + b"\r\n")
    assert status == 431, body
    assert headers["connection"] == "close"
    assert error_of(body)["status"] == 431 and "2048-byte" in error_of(body)["message"]
    # the same headers sent in many small pieces
    with connect(server) as s:
        s.sendall(b"GET /hello HTTP/1.1\r\nhost: x\r\n")
        for i in range(40):
            s.sendall(f"x-h{i}: {'b' * 100}\r\n".encode())
        status, _, body = read_response(s)
    assert status == 431
    assert get(server)[0] == 200


def test_too_many_header_fields_get_431(server):
    extra = b"".join(f"x-f{i}: 1\r\n".encode() for i in range(30))
    status, _, body = get(server, extra=extra)
    assert status == 431 and "header fields" in error_of(body)["message"]


def test_malformed_request_gets_json_400(server):
    with connect(server) as s:
        s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        status, _, body = read_response(s)
    assert status == 400 and error_of(body)["status"] == 400


def test_slow_headers_time_out_while_others_are_served(server):
    with connect(server) as slow_client:
        slow_client.sendall(b"GET /hello HTTP/1.1\r\n")
        start = time.monotonic()
        assert get(server)[0] == 200  # others are not held up meanwhile
        slow_client.sendall(b"x-a: 1\r\n")  # trickling bytes does not reset the clock
        status, _, body = read_response(slow_client)
        waited = time.monotonic() - start
    assert status == 408 and "not complete within 0.6 s" in error_of(body)["message"]
    assert LIMITS.header_timeout_s - 0.1 < waited < LIMITS.header_timeout_s + 2


def test_unused_connection_is_closed_after_the_header_timeout(server):
    with connect(server) as s:
        assert closed(s, within=LIMITS.header_timeout_s + 2)


def test_slow_body_gets_408(server):
    with connect(server) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n" + b"a" * 10)
        start = time.monotonic()
        status, headers, body = read_response(s)
        waited = time.monotonic() - start
    assert status == 408 and headers["connection"] == "close", body
    assert "body not complete within 0.8 s" in error_of(body)["message"]
    assert waited < BODY_TIMEOUT + 2
    with connect(server) as s:  # a body that arrives in time is read whole
        s.sendall(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n" + b"a" * 100)
        assert read_response(s)[2] == b"100"


def test_idle_connections_make_room_for_new_ones(server):
    """More slow clients than max_connections: the idle ones are closed, oldest first, and a
    real request still gets through."""
    idle = []
    for _ in range(LIMITS.max_connections + 3):
        s = connect(server)
        s.sendall(b"GET /hello HTTP/1.1\r\n")  # and never finish
        idle.append(s)
        time.sleep(0.01)
    try:
        assert get(server)[0] == 200
        assert closed(idle[0], within=1.0)  # the oldest went first
    finally:
        for s in idle:
            s.close()


def test_all_busy_refuses_with_503(server):
    busy = []
    try:
        for _ in range(LIMITS.max_connections):
            s = connect(server)
            s.sendall(b"GET /slow?s=3 HTTP/1.1\r\nhost: x\r\n\r\n")
            busy.append(s)
        time.sleep(0.3)
        status, headers, body = get(server)
        assert status == 503 and headers["retry-after"] == "1"
        assert "limit of 6 connections" in error_of(body)["message"]
        for s in busy:  # the busy ones are not disturbed
            assert read_response(s)[2] == b"slept"
    finally:
        for s in busy:
            s.close()
    assert get(server)[0] == 200


def test_fd_limit_fits_the_connections():
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    options = configure(ConnectionLimits(max_connections=10**9))
    assert LimitedH11Protocol.limits.max_connections <= max(1, hard - 64)
    assert options["http"] is LimitedH11Protocol
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    configure(ConnectionLimits())
