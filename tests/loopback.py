"""Servers on loopback for tests: a free port, a process started and awaited until healthy, then stopped."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    """Poll ``url`` until it answers 200; fail with the log's tail if the process exits or time runs out."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server not ready at {url}:\n{log.read_text()[-4000:]}")


def stop(process: subprocess.Popen, timeout: float = 20.0) -> None:
    """Terminate ``process``, killing it if it does not exit within ``timeout`` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@contextmanager
def serving(
    command: list[str], *, health_url: str, log: Path, env: dict, cwd: Path | None = None, timeout: float = 90.0
) -> Iterator[subprocess.Popen]:
    """Run ``command`` (output to ``log``) until the block ends, once ``health_url`` answers."""
    with log.open("wb") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    try:
        wait_ready(health_url, process, log, timeout)
        yield process
    finally:
        stop(process)
