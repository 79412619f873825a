"""Helpers of the traffic tests: the endpoint proxy as a process, tiny loopback upstreams that fail or hang, a client.

The proxy runs as the local backend runs it (``python -m mlops_serving.proxy`` from ``.venv-serving``); the stub
upstreams run in this process and record the ``x-request-id`` of every request they receive.
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.loopback import free_port, stop, wait_ready
from tests.serving_support import REPO_ROOT, SERVING_PYTHON


@contextmanager
def running_proxy(state_file: Path, log: Path, *options: str) -> Iterator[int]:
    """Run the endpoint proxy on a free port until the block ends; yield the port."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "kserve")}
    command = [str(SERVING_PYTHON), "-m", "mlops_serving.proxy", "--port", str(port), "--state", str(state_file)]
    with log.open("wb") as handle:
        process = subprocess.Popen([*command, *options], stdout=handle, stderr=subprocess.STDOUT, env=env)
    try:
        wait_ready(f"http://127.0.0.1:{port}/-/proxy/stats", process, log, timeout=30)
        yield port
    finally:
        stop(process)


def write_state(path: Path, state: dict) -> None:
    """Replace the proxy's state file atomically, as the local backend does, with a new mtime."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, path)
    time.sleep(0.02)  # mtime granularity: the next request must see a changed file


class StubUpstream:
    """A loopback HTTP/1.1 server that answers ``status`` after ``delay`` seconds and records request ids."""

    def __init__(self, status: int = 200, delay: float = 0.0, close: bool = False) -> None:
        self.status = status
        self.delay = delay
        self.close = close
        self.request_ids: list[str | None] = []
        self.bodies: list[bytes] = []
        self.release = threading.Event()
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                if "chunked" in (self.headers.get("transfer-encoding") or ""):
                    received = b""
                    while size := int(self.rfile.readline().split(b";")[0], 16):
                        received += self.rfile.read(size)
                        self.rfile.readline()
                    while self.rfile.readline() not in (b"\r\n", b""):
                        pass
                else:
                    received = self.rfile.read(int(self.headers.get("content-length") or 0))
                stub.bodies.append(received)
                stub.request_ids.append(self.headers.get("x-request-id"))
                if stub.delay:
                    stub.release.wait(stub.delay)
                body = b'{"error": "stub"}' if stub.status >= 400 else json.dumps({"port": stub.port}).encode()
                self.send_response(stub.status)
                self.send_header("Content-Length", str(len(body)))
                if stub.close:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> StubUpstream:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class KeepAliveClient:
    """V2 requests over one keep-alive connection; each call returns ``(status, body bytes, seconds)``."""

    def __init__(self, port: int, model_name: str) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.path = f"/v2/models/{model_name}/infer"

    def infer(self, row: list[float], request_id: str | None = None) -> tuple[int, bytes, float]:
        body = json.dumps({"inputs": [{"name": "input-0", "shape": [1, len(row)], "datatype": "FP32", "data": row}]})
        headers = {"Content-Type": "application/json"}
        if request_id is not None:
            headers["x-request-id"] = request_id
        started = time.perf_counter()
        self.connection.request("POST", self.path, body=body, headers=headers)
        response = self.connection.getresponse()
        data = response.read()
        return response.status, data, time.perf_counter() - started

    def get_json(self, path: str) -> dict:
        self.connection.request("GET", path)
        response = self.connection.getresponse()
        return json.loads(response.read())

    def close(self) -> None:
        self.connection.close()


def logged_request_ids(log_dir: Path, wanted: set[str], timeout: float = 60.0) -> dict[str, str]:
    """``{request_id: model_version}`` of the ``wanted`` ids in a prediction log, once all are flushed."""
    import pandas as pd

    deadline = time.time() + timeout
    found: dict[str, str] = {}
    while time.time() < deadline:
        files = sorted(log_dir.glob("dt=*/*.parquet"))
        if files:
            frame = pd.concat(pd.read_parquet(f, columns=["request_id", "model_version"]) for f in files)
            frame = frame[frame["request_id"].isin(wanted)]
            found = dict(zip(frame["request_id"], frame["model_version"].astype(str), strict=True))
            if set(found) == wanted:
                return found
        time.sleep(0.3)
    return found
