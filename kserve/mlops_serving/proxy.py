"""Stable local endpoint: a TCP proxy from one fixed port to the live (blue or green) server.

``python -m mlops_serving.proxy --port 8085 --state <serving_root>/endpoint.json``

The local serving backend starts the new colour next to the old one, checks it, then rewrites the state file
(``{"upstream": "127.0.0.1:<port>", ...}``, replaced atomically). The proxy reads the file whenever its mtime
changes, so every new connection goes to the new colour; connections already open stay on the colour they
were opened to until that server drains and closes them (the backend stops the old colour after a grace
period). With no live upstream the proxy answers ``503`` with a JSON error. It works at the TCP level, so V1,
V2, metrics and health endpoints all pass through unchanged.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
from pathlib import Path

logger = logging.getLogger("mlops_serving.proxy")

_UNAVAILABLE = json.dumps({"error": "No model server is live behind this endpoint; deploy a model first."}).encode()
_UNAVAILABLE_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
    + f"Content-Length: {len(_UNAVAILABLE)}\r\n\r\n".encode()
    + _UNAVAILABLE
)


class EndpointProxy:
    """Forward each accepted connection to the upstream named in ``state_file``."""

    def __init__(self, state_file: Path) -> None:
        self.state_file = state_file
        self._mtime: float | None = None
        self._upstream: tuple[str, int] | None = None

    def upstream(self) -> tuple[str, int] | None:
        """Return ``(host, port)`` of the live server, re-reading the state file when it changed."""
        try:
            mtime = self.state_file.stat().st_mtime_ns
        except FileNotFoundError:
            self._mtime, self._upstream = None, None
            return None
        if mtime != self._mtime:
            try:
                state = json.loads(self.state_file.read_text())
                host, port = state["upstream"].rsplit(":", 1)
                self._upstream = (host, int(port))
                self._mtime = mtime
                logger.info("Upstream is now %s:%s (%s)", host, port, state.get("color"))
            except (ValueError, KeyError, OSError) as exc:
                logger.error("Unreadable state file %s: %s", self.state_file, exc)
                return self._upstream
        return self._upstream

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Pipe one client connection to the upstream and back."""
        target = self.upstream()
        upstream_writer = None
        try:
            if target is None:
                raise ConnectionRefusedError("no upstream")
            upstream_reader, upstream_writer = await asyncio.open_connection(*target)
        except OSError:
            writer.write(_UNAVAILABLE_RESPONSE)
            await _close(writer)
            return
        for stream in (writer, upstream_writer):
            sock = stream.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        await _close(writer)


async def _close(writer: asyncio.StreamWriter) -> None:
    try:
        writer.close()
        await writer.wait_closed()
    except (ConnectionError, OSError):
        pass


async def serve(port: int, state_file: Path, host: str = "127.0.0.1") -> None:
    """Run the proxy until SIGTERM/SIGINT."""
    proxy = EndpointProxy(state_file)
    server = await asyncio.start_server(proxy.handle, host, port, reuse_address=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    logger.info("Endpoint proxy on http://%s:%d (state %s, pid %d)", host, port, state_file, os.getpid())
    async with server:
        await stop.wait()
    logger.info("Endpoint proxy stopped")


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments and run the proxy."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--state", type=Path, required=True, help="JSON file naming the live upstream.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(args.port, args.state, args.host))


if __name__ == "__main__":
    main()
