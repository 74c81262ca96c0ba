"""The service's listening socket: connections with Nagle's algorithm off, so a kept-alive client's answer
never waits for its delayed ACK (40 ms a request before `tcp_listener`)."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest
import uvicorn

from app.serving import tcp_listener


async def _ok(scope: dict, receive: object, send: object) -> None:
    """A bare ASGI app: headers and body as two messages, as every Starlette response sends them."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": b"ok"})  # type: ignore[operator]


def test_uvicorns_connections_on_the_listener_send_without_waiting_for_acks() -> None:
    listener = tcp_listener("127.0.0.1", 0)
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(_ok, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            assert client.get("/").text == "ok"  # the connection stays open: a kept-alive session
            connections = list(server.server_state.connections)
            assert connections, "the kept-alive connection is open on the server"
            for connection in connections:
                accepted = connection.transport.get_extra_info("socket")
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        server.should_exit = True
        thread.join(30)
        listener.close()


def test_a_taken_port_raises_for_serve_to_report() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError):
            tcp_listener("127.0.0.1", taken.getsockname()[1])
