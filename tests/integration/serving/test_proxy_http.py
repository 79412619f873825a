"""The endpoint proxy's HTTP/1.1 handling against tiny loopback upstreams: framing, switching, errors.

The real proxy process; raw sockets where a client library would hide the bytes on the wire.
"""

from __future__ import annotations

import json
import socket

import pytest

from tests.integration.serving.proxy_support import KeepAliveClient, StubUpstream, running_proxy, write_state

pytestmark = pytest.mark.integration


def _read_response(stream) -> tuple[int, dict[str, str], bytes]:
    status = int(stream.readline().split()[1])
    headers = {}
    while (line := stream.readline()) != b"\r\n":
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, stream.read(int(headers.get("content-length", 0)))


def _raw(port: int):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock, sock.makefile("rb")


def test_chunked_bodies_and_expect_continue_reach_the_upstream_intact(tmp_path):
    state = tmp_path / "endpoint.json"
    with StubUpstream() as upstream:
        write_state(state, {"upstream": upstream.address})
        with running_proxy(state, tmp_path / "proxy.log") as port:
            sock, stream = _raw(port)
            chunked = b"4\r\nabcd\r\n3;ext=1\r\nefg\r\n0\r\n\r\n"
            sock.sendall(b"POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked)
            assert _read_response(stream)[0] == 200
            # Expect: 100-continue: the proxy says continue, then forwards the whole request (without Expect).
            sock.sendall(
                b"POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
            )
            assert stream.readline() == b"HTTP/1.1 100 Continue\r\n" and stream.readline() == b"\r\n"
            sock.sendall(b"hello")
            status, headers, body = _read_response(stream)
            sock.close()
    assert status == 200 and json.loads(body) == {"port": upstream.port}
    assert upstream.bodies == [b"abcdefg", b"hello"]
    assert all(upstream.request_ids)  # the proxy named both requests


def test_a_switch_moves_the_next_request_of_an_open_connection(tmp_path):
    state = tmp_path / "endpoint.json"
    with StubUpstream() as blue, StubUpstream(close=True) as green:
        write_state(state, {"upstream": blue.address})
        with running_proxy(state, tmp_path / "proxy.log") as port:
            client = KeepAliveClient(port, "m")
            first = [json.loads(client.infer([1.0])[1])["port"] for _ in range(3)]
            write_state(state, {"upstream": green.address})
            # green closes its connection after each answer: the proxy opens a new one, the client keeps its own.
            second = [json.loads(client.infer([1.0])[1])["port"] for _ in range(3)]
            stats = client.get_json("/-/proxy/stats")
            client.close()
    assert first == [blue.port] * 3 and second == [green.port] * 3
    assert stats["connections"] == 2  # the readiness probe's and this client's one


def test_no_upstream_answers_503_and_garbage_answers_400(tmp_path):
    state = tmp_path / "endpoint.json"
    with running_proxy(state, tmp_path / "proxy.log") as port:
        client = KeepAliveClient(port, "m")
        status, body, _ = client.infer([1.0])
        assert status == 503 and "deploy a model first" in json.loads(body)["error"]
        closed = StubUpstream()  # never started: nothing listens on its port once it is closed
        closed.server.server_close()
        write_state(state, {"upstream": closed.address})
        status, body, _ = client.infer([1.0])
        assert status == 503
        write_state(state, {"upstream": "not-an-address"})  # unreadable: the previous route stays
        assert client.get_json("/-/proxy/stats")["route"]["primary"] == closed.address
        client.close()
        sock, stream = _raw(port)
        sock.sendall(b"POST /v2/models/m/infer HTTP/1.1\r\nbroken header line\r\n\r\n")
        status, headers, _ = _read_response(stream)
        sock.close()
    assert status == 400 and headers["connection"] == "close"
