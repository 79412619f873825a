"""Stable local endpoint: an HTTP/1.1 proxy from one fixed port to the live server, with canary and shadow traffic.

``python -m mlops_serving.proxy --port 8085 --state <serving_root>/endpoint.json``

The state file names where requests go, and is replaced atomically by the local serving backend::

    {"upstream": "127.0.0.1:P", "color": "blue", "version": "3",
     "canary": {"upstream": "127.0.0.1:Q", "version": "4", "weight": 10},     # optional
     "shadow": {"upstream": "127.0.0.1:R", "version": "4", "percent": 100}}   # optional

The proxy re-reads the file whenever its mtime changes and routes each request (not each connection: clients
keep their connections alive across a switch) on its own:

* an inference request (``POST .../infer``, ``:predict``, ``:explain``) goes to the canary with probability
  ``weight``/100, else to the primary ``upstream``; every other path (health, metadata, metrics) goes to the primary;
* for ``percent`` % of inference requests a copy goes to the shadow, asynchronously: the client's answer always comes
  from the primary, byte for byte; a slow, hanging or failing shadow never delays it (a bounded queue that drops
  when full, a timeout per mirrored request);
* a request without an ``x-request-id`` header gets one, so the primary and the shadow log the same request id in
  their prediction logs (the model server reads the V2 ``id`` first, then this header).

Upstream connections are kept alive in a pool per upstream. With no live upstream the proxy answers ``503`` with a
JSON error. ``GET /-/proxy/stats`` answers the proxy's own counters (requests per target, mirrored, dropped and
failed shadow requests, sleeps and wakes) as JSON.

Scale to zero (as Knative's activator does for KServe Serverless): when the state names how to start the primary's
processes (``wake``: their command lines, environment, logs and readiness URLs, written by the backend that started
them) and a ``sleep_after``, the proxy stops those processes after ``sleep_after`` seconds without an inference request
(never while a canary or shadow is routed). The next request for the primary wakes it: requests are held (at most
``queue_limit``, for at most ``timeout`` seconds, else a JSON ``503`` naming the limit), one wake starts the same
command lines, waits until every process is ready, then the held requests go through. A failed wake answers ``503``
with the tail of the server's log and leaves the slot asleep: the next request tries again, nothing restarts on its own.

Files the proxy writes, next to the state file (it is their only writer): ``scale.json`` (the primary's slot and
whether it is ``awake`` or ``asleep``), the pid file of each process it woke (the path the state names, so the backend
can stop them without the proxy), and ``wakes/<time>-<model>-v<version>-<id>.json``, one immutable record per wake
(model, version, ``woken_at``, ``cold_start_seconds`` from the triggering request's arrival to the slot being ready,
``trigger``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import re
import signal
import socket
import subprocess
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# The local backend's process handling (stdlib only): the proxy runs where the backend installed the provider.
from mlops_provider.utils.process import read_pid, stop_process, write_pid_file

logger = logging.getLogger("mlops_serving.proxy")

STATS_PATH = b"/-/proxy/stats"
REQUEST_ID_HEADER = b"x-request-id"
#: Largest request or response head (request line and headers) accepted.
MAX_HEAD_BYTES = 64 * 1024
#: Mirrored requests waiting for the shadow; more are dropped (and counted), never queued without bound.
SHADOW_QUEUE_SIZE = 256
#: Concurrent mirrored requests in flight to the shadow.
SHADOW_WORKERS = 4
#: Seconds a mirrored request may take before it is abandoned (and its connection closed).
SHADOW_TIMEOUT = 2.0
#: Idle keep-alive connections kept per upstream.
POOL_SIZE = 32
#: Seconds between two looks at the primary's idleness (scale to zero) and at exited children.
IDLE_POLL_SECONDS = 0.2
#: Seconds between readiness polls of a waking process.
READY_POLL_SECONDS = 0.05
#: Lines of a server's log quoted when its wake fails.
LOG_TAIL_LINES = 15
#: Command-line marker of the model server processes (``mlops_provider.serving.local.SERVER_MARKER``).
SERVER_MARKER = "mlops_serving"

_INFERENCE_SUFFIXES = (b"/infer", b":predict", b":explain")


def _response(status: bytes, body: dict, close: bool = False) -> bytes:
    data = json.dumps(body).encode()
    connection = b"close" if close else b"keep-alive"
    return (
        b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\nConnection: " + connection
        + b"\r\nContent-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data
    )  # fmt: skip


_UNAVAILABLE = {"error": "No model server is live behind this endpoint; deploy a model first."}
_BAD_REQUEST = {"error": "Malformed HTTP request."}


class HttpError(Exception):
    """A message that is not valid HTTP/1.x (or too large to frame)."""


@dataclass(slots=True)
class Message:
    """One HTTP/1.x request or response: its head's first line, headers (lower-cased names) and raw bytes."""

    first_line: bytes
    headers: dict[bytes, bytes]
    head: bytes
    body: bytes
    #: ``time.monotonic()`` when the head had arrived (cold starts are measured from it).
    arrived: float = 0.0

    @property
    def keep_alive(self) -> bool:
        connection = self.headers.get(b"connection", b"").lower()
        if self.first_line.startswith(b"HTTP/1.0") or self.first_line.endswith(b"HTTP/1.0"):
            return b"keep-alive" in connection
        return b"close" not in connection

    def raw(self) -> bytes:
        return self.head + self.body


def _parse_head(head: bytes) -> tuple[bytes, dict[bytes, bytes]]:
    lines = head[:-4].split(b"\r\n")
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            raise HttpError(f"header line without a colon: {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    return lines[0], headers


async def _read_head(reader: asyncio.StreamReader) -> bytes | None:
    """The next message head, or None when the peer closed the connection between messages."""
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise HttpError("connection closed inside a message head") from None
    except asyncio.LimitOverrunError:
        raise HttpError(f"message head larger than {MAX_HEAD_BYTES} bytes") from None


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    """A chunked body, raw (sizes, extensions and trailers kept), so it is forwarded unchanged."""
    parts = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        parts.append(size_line)
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise HttpError(f"bad chunk size {size_line[:40]!r}") from None
        if size == 0:
            while (trailer := await reader.readuntil(b"\r\n")) != b"\r\n":
                parts.append(trailer)
            parts.append(b"\r\n")
            return b"".join(parts)
        parts.append(await reader.readexactly(size + 2))


async def _read_body(reader: asyncio.StreamReader, headers: dict[bytes, bytes], until_eof: bool) -> bytes:
    if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
        return await _read_chunked(reader)
    length = headers.get(b"content-length")
    if length is not None:
        try:
            return await reader.readexactly(int(length))
        except ValueError:
            raise HttpError(f"bad Content-Length {length[:40]!r}") from None
    return await reader.read() if until_eof else b""


async def read_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Message | None:
    """The next request on a client connection, or None when the client closed it.

    A client that sent ``Expect: 100-continue`` waits for leave to send its body: the proxy gives it (the request
    is forwarded whole, so the header is dropped from what goes upstream).
    """
    head = await _read_head(reader)
    if head is None:
        return None
    arrived = time.monotonic()
    first_line, headers = _parse_head(head)
    if b"100-continue" in headers.get(b"expect", b"").lower():
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        head = _without_header(head, b"expect")
        del headers[b"expect"]
    return Message(first_line, headers, head, await _read_body(reader, headers, until_eof=False), arrived)


async def read_response(reader: asyncio.StreamReader, method: bytes) -> Message:
    """The upstream's final response to a ``method`` request (interim ``1xx`` responses are skipped)."""
    while True:
        head = await _read_head(reader)
        if head is None:
            raise ConnectionResetError("upstream closed the connection before answering")
        first_line, headers = _parse_head(head)
        status = first_line[9:12]
        if status.startswith(b"1") and status != b"101":
            continue
        if method == b"HEAD" or status in (b"204", b"304"):
            return Message(first_line, headers, head, b"")
        return Message(first_line, headers, head, await _read_body(reader, headers, until_eof=True))


def _framed(message: Message) -> bool:
    """Whether the message's end is known without closing the connection."""
    return b"content-length" in message.headers or b"chunked" in message.headers.get(b"transfer-encoding", b"")


class UpstreamPool:
    """Idle keep-alive connections to one upstream."""

    def __init__(self, address: tuple[str, int], size: int = POOL_SIZE) -> None:
        self.address = address
        self.size = size
        self._idle: deque[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = deque()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(*self.address, limit=MAX_HEAD_BYTES)
        _no_delay(writer)
        return reader, writer

    async def exchange(self, request: bytes, method: bytes) -> Message:
        """Send ``request`` and return the response, on a pooled connection when one is idle.

        A pooled connection the upstream closed while idle fails before any answer: the request (buffered whole)
        is then sent once more on a new connection.
        """
        while self._idle:
            reader, writer = self._idle.pop()
            if reader.at_eof() or writer.is_closing():
                writer.close()
                continue
            try:
                writer.write(request)
                response = await read_response(reader, method)
            except (ConnectionError, asyncio.IncompleteReadError):
                writer.close()
                continue
            except BaseException:  # cancelled or timed out half-way: the connection's state is unknown
                writer.close()
                raise
            self._release(reader, writer, response)
            return response
        reader, writer = await self._connect()
        try:
            writer.write(request)
            response = await read_response(reader, method)
        except BaseException:
            writer.close()
            raise
        self._release(reader, writer, response)
        return response

    def _release(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, response: Message) -> None:
        if response.keep_alive and _framed(response) and len(self._idle) < self.size:
            self._idle.append((reader, writer))
        else:
            writer.close()

    def close(self) -> None:
        while self._idle:
            self._idle.pop()[1].close()


@dataclass(slots=True)
class Wake:
    """How to start the primary's processes again, and when it may sleep (the state's ``wake``)."""

    slot: str
    model: str
    version: str
    #: In start order: ``{"component", "argv", "env", "cwd", "log", "ready_url", "woken_pid_file"}``.
    components: list[dict[str, Any]]
    #: The processes the backend started: ``{component: pid}``.
    pids: dict[str, int] = field(default_factory=dict)
    #: Seconds without an inference request before the primary sleeps; None: it never does.
    sleep_after: float | None = None
    timeout: float = 120.0
    queue_limit: int = 256


@dataclass(slots=True)
class Route:
    """Where requests go, from the state file."""

    primary: tuple[str, int]
    canary: tuple[str, int] | None = None
    canary_weight: float = 0.0
    shadow: tuple[str, int] | None = None
    shadow_percent: float = 0.0
    wake: Wake | None = None


def _address(text: str) -> tuple[str, int]:
    host, port = text.rsplit(":", 1)
    return host, int(port)


def _text(address: tuple[str, int]) -> str:
    return f"{address[0]}:{address[1]}"


def parse_state(state: dict) -> Route:
    """The route a state file describes (``ValueError``/``KeyError`` when it is malformed)."""
    route = Route(_address(state["upstream"]))
    canary = state.get("canary")
    if canary:
        weight = float(canary.get("weight", 0))
        if not 0 <= weight <= 100:
            raise ValueError(f"canary weight {weight} is outside 0..100")
        route.canary, route.canary_weight = _address(canary["upstream"]), weight / 100
    shadow = state.get("shadow")
    if shadow:
        percent = float(shadow.get("percent", 100))
        if not 0 <= percent <= 100:
            raise ValueError(f"shadow percent {percent} is outside 0..100")
        route.shadow, route.shadow_percent = _address(shadow["upstream"]), percent / 100
    wake = state.get("wake")
    if wake:
        sleep_after = wake.get("sleep_after")
        if sleep_after is not None and float(sleep_after) <= 0:
            raise ValueError(f"wake.sleep_after {sleep_after} must be positive")
        components = list(wake["components"])
        for component in components:
            for key in ("component", "argv", "log", "ready_url", "woken_pid_file"):
                if not component.get(key):
                    raise ValueError(f"wake component without {key!r}")
        route.wake = Wake(
            slot=str(wake["slot"]),
            model=str(wake["model"]),
            version=str(wake["version"]),
            components=components,
            pids={str(k): int(v) for k, v in (wake.get("pids") or {}).items() if v},
            sleep_after=None if sleep_after is None else float(sleep_after),
            timeout=float(wake.get("timeout", 120.0)),
            queue_limit=int(wake.get("queue_limit", 256)),
        )
    return route


class EndpointProxy:
    """Route each request to the upstreams named in ``state_file``; mirror to the shadow."""

    def __init__(
        self,
        state_file: Path,
        *,
        shadow_queue_size: int = SHADOW_QUEUE_SIZE,
        shadow_workers: int = SHADOW_WORKERS,
        shadow_timeout: float = SHADOW_TIMEOUT,
    ) -> None:
        self.state_file = state_file
        self.shadow_timeout = shadow_timeout
        self.shadow_workers = shadow_workers
        self._mtime: int | None = None
        self._route: Route | None = None
        self._pools: dict[tuple[str, int], UpstreamPool] = {}
        self._shadow_pools: dict[tuple[str, int], UpstreamPool] = {}
        self._shadow_queue: asyncio.Queue[tuple[tuple[str, int], bytes, bytes]] = asyncio.Queue(shadow_queue_size)
        self._workers: list[asyncio.Task] = []
        # Scale to zero of the primary: the proxy's own view, also written to scale.json (its only writer).
        self._scale_file = state_file.parent / "scale.json"
        self._wakes_dir = state_file.parent / "wakes"
        self._asleep: str | None = _asleep_slot(self._scale_file)
        self._sleeping: asyncio.Task | None = None
        self._waking: asyncio.Task | None = None
        self._held = 0
        self._in_flight = 0
        self._idle_slot: str | None = None
        self._last_inference = time.monotonic()
        self._children: list[subprocess.Popen] = []  # processes it woke, reaped once they exit
        self.stats = {
            "connections": 0,
            "requests": 0,
            "primary": 0,
            "canary": 0,
            "unavailable": 0,
            "shadow_mirrored": 0,
            "shadow_completed": 0,
            "shadow_errors": 0,
            "shadow_timeouts": 0,
            "shadow_dropped": 0,
            "sleeps": 0,
            "wakes": 0,
            "wake_failures": 0,
            "wake_rejected": 0,
        }
        self.last_cold_start_seconds: float | None = None

    def route(self) -> Route | None:
        """The current route, re-reading the state file when it changed."""
        try:
            mtime = os.stat(self.state_file).st_mtime_ns
        except FileNotFoundError:
            self._mtime, self._route = None, None
            return None
        if mtime != self._mtime:
            try:
                state = json.loads(self.state_file.read_text())
                route = parse_state(state)
            except (ValueError, KeyError, TypeError, OSError) as exc:
                logger.error("Unreadable state file %s (keeping the previous route): %s", self.state_file, exc)
                return self._route
            self._mtime, self._route = mtime, route
            self._forget_pools(route)
            logger.info(
                "Route: primary %s (%s, version %s), canary %s at %s%%, shadow %s at %s%%",
                route.primary, state.get("color"), state.get("version"), route.canary,
                route.canary_weight * 100, route.shadow, route.shadow_percent * 100,
            )  # fmt: skip
        return self._route

    def _forget_pools(self, route: Route) -> None:
        live = {route.primary, route.canary, route.shadow}
        for pools in (self._pools, self._shadow_pools):
            for address in [a for a in pools if a not in live]:
                pools.pop(address).close()

    def _pool(self, address: tuple[str, int]) -> UpstreamPool:
        pool = self._pools.get(address)
        if pool is None:
            pool = self._pools[address] = UpstreamPool(address)
        return pool

    def start_shadow_workers(self) -> None:
        """Start the tasks that send mirrored requests (call inside the running loop)."""
        self._workers = [asyncio.create_task(self._shadow_worker()) for _ in range(self.shadow_workers)]

    async def stop_shadow_workers(self) -> None:
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)

    async def _shadow_worker(self) -> None:
        while True:
            address, request, method = await self._shadow_queue.get()
            # The shadow's own pools: a shadow connection never serves a live request.
            pool = self._shadow_pools.get(address)
            if pool is None:
                pool = self._shadow_pools[address] = UpstreamPool(address, size=self.shadow_workers)
            try:
                response = await asyncio.wait_for(pool.exchange(request, method), self.shadow_timeout)
                status = response.first_line[9:12]
                self.stats["shadow_completed" if status.startswith(b"2") else "shadow_errors"] += 1
            except TimeoutError:
                self.stats["shadow_timeouts"] += 1
            except (OSError, HttpError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                self.stats["shadow_errors"] += 1

    def _mirror(self, address: tuple[str, int], request: bytes, method: bytes) -> None:
        try:
            self._shadow_queue.put_nowait((address, request, method))
            self.stats["shadow_mirrored"] += 1
        except asyncio.QueueFull:
            self.stats["shadow_dropped"] += 1

    def _stats_response(self) -> bytes:
        route = self._route
        wake = route.wake if route else None
        body = {
            **self.stats,
            "last_cold_start_seconds": self.last_cold_start_seconds,
            "held": self._held,
            "scale": {
                "slot": wake.slot if wake else None,
                "state": self._scale_state(wake),
                "sleep_after": wake.sleep_after if wake else None,
            },
            "shadow_queued": self._shadow_queue.qsize(),
            "route": {
                "primary": _text(route.primary) if route else None,
                "canary": _text(route.canary) if route and route.canary else None,
                "canary_weight": round(route.canary_weight * 100, 3) if route else None,
                "shadow": _text(route.shadow) if route and route.shadow else None,
                "shadow_percent": round(route.shadow_percent * 100, 3) if route else None,
            },
        }
        return _response(b"200 OK", body)

    # -- scale to zero -------------------------------------------------------------------------------------------------
    def _scale_state(self, wake: Wake | None) -> str | None:
        if wake is None:
            return None
        if self._waking is not None and not self._waking.done():
            return "waking"
        return "asleep" if self._asleep == wake.slot else "awake"

    def start_scaler(self) -> None:
        """Start the task that puts an idle primary to sleep (call inside the running loop)."""
        self._workers.append(asyncio.create_task(self._scaler()))

    async def _scaler(self) -> None:
        while True:
            await asyncio.sleep(IDLE_POLL_SECONDS)
            self._children = [child for child in self._children if child.poll() is None]
            route = self.route()
            wake = route.wake if route else None
            if route is None or wake is None:
                continue
            now = time.monotonic()
            if wake.slot != self._idle_slot:  # a new primary: its idle time starts now
                self._idle_slot, self._last_inference = wake.slot, now
                continue
            idle = now - self._last_inference
            if (
                wake.sleep_after is None
                or route.canary is not None
                or route.shadow is not None  # a rollout is judging a candidate against this primary
                or self._asleep == wake.slot
                or self._in_flight
                or (self._waking is not None and not self._waking.done())
                or idle < wake.sleep_after
            ):
                continue
            self._sleeping = asyncio.create_task(self._sleep(wake, route.primary, idle))
            await self._sleeping

    async def _sleep(self, wake: Wake, address: tuple[str, int], idle: float) -> None:
        """Stop the primary's processes (the backend's and any this proxy woke); it stays the route, asleep."""
        self._asleep = wake.slot  # from here on requests for it are held for a wake
        self.stats["sleeps"] += 1  # counted before the processes stop, so no reader sees one asleep but uncounted
        _write_json(self._scale_file, {"slot": wake.slot, "state": "asleep", "since": _now()})
        await asyncio.to_thread(_stop_slot_processes, wake)
        pool = self._pools.pop(address, None)
        if pool is not None:
            pool.close()
        logger.info(
            "%s v%s asleep after %.1f s without an inference request (sleep_after %s s)",
            wake.model, wake.version, idle, wake.sleep_after,
        )  # fmt: skip

    async def _hold_for_wake(self, wake: Wake, request: Message, method: bytes, path: bytes) -> bytes | None:
        """Wait until the primary is awake (one wake for all held requests); a 503 response when it cannot be."""
        if self._waking is None or self._waking.done():
            trigger = {"method": method.decode(errors="replace"), "path": path.decode(errors="replace")}
            self._waking = asyncio.create_task(self._wake(wake, request.arrived or time.monotonic(), trigger))
        elif self._held >= wake.queue_limit:
            self.stats["wake_rejected"] += 1
            return _response(
                b"503 Service Unavailable",
                {
                    "error": f"{wake.model} v{wake.version} is waking up and {self._held} requests are already held "
                    f"(the wake queue limit). Retry shortly, raise the local backend's wake_queue_limit, or keep the "
                    f"model awake with serving.autoscaling.min_replicas: 1.",
                    "reason": "WakeQueueFull",
                },
            )
        self._held += 1
        try:
            failure = await asyncio.shield(self._waking)
        finally:
            self._held -= 1
        return None if failure is None else _response(b"503 Service Unavailable", failure)

    async def _wake(self, wake: Wake, arrived: float, trigger: dict[str, str]) -> dict[str, Any] | None:
        """Start the primary's processes as the backend did and wait until each is ready; the error body, or None."""
        if self._sleeping is not None and not self._sleeping.done():
            await self._sleeping
        deadline = arrived + wake.timeout
        started: list[tuple[dict[str, Any], subprocess.Popen]] = []
        held_max = 0
        failure: str | None = None
        for component in wake.components:
            try:
                process = await asyncio.to_thread(_spawn, component)
            except OSError as exc:
                failure = f"the {component['component']} could not be started ({exc})"
                break
            started.append((component, process))
            self._children.append(process)
            failure = await _wait_ready(process, component, deadline)
            held_max = max(held_max, self._held)
            if failure is not None:
                break
        if failure is not None:
            await asyncio.to_thread(_stop_woken, started)
            self.stats["wake_failures"] += 1
            log_path = started[-1][0]["log"] if started else None
            tail = _log_tail(Path(log_path)) if log_path else ""
            logger.warning("Could not wake %s v%s: %s\n%s", wake.model, wake.version, failure, tail)
            return {
                "error": f"{wake.model} v{wake.version} was asleep (scaled to zero) and could not be woken: {failure}. "
                f"Last lines of {log_path}:\n{tail}\nFix the cause; the next request tries to wake it again.",
                "reason": "WakeFailed",
            }
        ready = time.monotonic()
        cold_start = round(ready - arrived, 4)
        self._asleep = None
        self._last_inference = ready
        pids = {component["component"]: process.pid for component, process in started}
        woken_at = _now()
        _write_json(self._scale_file, {"slot": wake.slot, "state": "awake", "since": woken_at, "pids": pids})
        record = {
            "model": wake.model,
            "version": wake.version,
            "slot": wake.slot,
            "woken_at": woken_at,
            "cold_start_seconds": cold_start,
            "trigger": {**trigger, "held_requests": held_max},
            "pids": pids,
        }
        name = f"{woken_at.replace(':', '').replace('-', '')}-{_safe(wake.model)}-v{_safe(wake.version)}"
        _write_json(self._wakes_dir / f"{name}-{uuid.uuid4().hex[:8]}.json", record)
        self.stats["wakes"] += 1
        self.last_cold_start_seconds = cold_start
        logger.info("woke %s v%s in %.2f s", wake.model, wake.version, cold_start)
        return None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one client connection: one request after another until the client closes it."""
        _no_delay(writer)
        self.stats["connections"] += 1
        try:
            while True:
                try:
                    request = await read_request(reader, writer)
                except (HttpError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    writer.write(_response(b"400 Bad Request", _BAD_REQUEST, close=True))
                    break
                if request is None:
                    break
                response = await self.forward(request)
                writer.write(response)
                await writer.drain()
                if not request.keep_alive or response.startswith(b"HTTP/1.0"):
                    break
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            await _close(writer)

    async def forward(self, request: Message) -> bytes:
        """Send ``request`` where the route says; return the raw response for the client."""
        method, _, rest = request.first_line.partition(b" ")
        target = rest.rpartition(b" ")[0]
        if target == STATS_PATH:
            return self._stats_response()
        route = self.route()
        self.stats["requests"] += 1
        if route is None:
            self.stats["unavailable"] += 1
            return _response(b"503 Service Unavailable", _UNAVAILABLE)
        path = target.split(b"?", 1)[0]
        inference = method == b"POST" and path.endswith(_INFERENCE_SUFFIXES)
        head = request.head
        if REQUEST_ID_HEADER not in request.headers:
            head = head[:-2] + REQUEST_ID_HEADER + b": " + uuid.uuid4().hex.encode() + b"\r\n\r\n"
        raw = head + request.body
        address = route.primary
        if inference:
            if route.canary is not None and random.random() < route.canary_weight:
                address = route.canary
                self.stats["canary"] += 1
            else:
                self.stats["primary"] += 1
            if route.shadow is not None and random.random() < route.shadow_percent:
                self._mirror(route.shadow, raw, method)
        else:
            self.stats["primary"] += 1
        primary = address == route.primary
        if inference and primary:
            self._last_inference = time.monotonic()
        if primary and route.wake is not None and self._asleep == route.wake.slot:
            refused = await self._hold_for_wake(route.wake, request, method, path)
            if refused is not None:
                return refused
        self._in_flight += primary
        try:
            response = await self._pool(address).exchange(raw, method)
        except (OSError, HttpError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            logger.warning("Upstream %s:%d failed: %s", *address, exc)
            self.stats["unavailable"] += 1
            return _response(b"503 Service Unavailable", _UNAVAILABLE)
        finally:
            self._in_flight -= primary
            if inference and primary:
                self._last_inference = time.monotonic()
        if b"connection" in response.headers:
            # Hop-by-hop: the upstream closing its connection to the proxy does not close the client's.
            response.head = _without_header(response.head, b"connection")
        if not _framed(response) and response.first_line[9:12] not in (b"204", b"304") and method != b"HEAD":
            # Delimited by the upstream closing: add the length so the client connection can stay alive.
            response.head = response.head[:-2] + b"content-length: " + str(len(response.body)).encode() + b"\r\n\r\n"
        return response.raw()


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)[:80]


def _write_json(path: Path, data: dict) -> None:
    """Replace ``path`` atomically: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def _asleep_slot(scale_file: Path) -> str | None:
    """The slot a previous run of the proxy left asleep (so a restarted proxy still wakes it)."""
    try:
        scale = json.loads(scale_file.read_text())
    except (OSError, ValueError):
        return None
    return str(scale["slot"]) if isinstance(scale, dict) and scale.get("state") == "asleep" else None


def _stop_slot_processes(wake: Wake) -> None:
    """Stop the slot's processes, front first: those the backend started and those a wake started."""
    for component in reversed(wake.components):
        name = component["component"]
        for pid in {wake.pids.get(name), read_pid(Path(component["woken_pid_file"]))} - {None}:
            stop_process(pid, marker=SERVER_MARKER)  # the marker guards against a reused pid
        Path(component["woken_pid_file"]).unlink(missing_ok=True)


def _stop_woken(started: list[tuple[dict[str, Any], subprocess.Popen]]) -> None:
    for component, process in reversed(started):
        stop_process(process.pid)
        process.wait(timeout=5)
        Path(component["woken_pid_file"]).unlink(missing_ok=True)


def _spawn(component: dict[str, Any]) -> subprocess.Popen:
    """Start one of the slot's processes exactly as the backend recorded it; record its pid."""
    log = Path(component["log"])
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        process = subprocess.Popen(
            list(component["argv"]),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(component.get("env") or {})},  # the proxy inherited the backend's environment
            cwd=component.get("cwd"),
            start_new_session=True,  # like the backend's: outlives the proxy, stopped as a process group
        )
    write_pid_file(Path(component["woken_pid_file"]), process.pid)
    return process


async def _ready(url: str) -> bool:
    """Whether ``url`` answers ``200`` (one HTTP/1.1 GET on a fresh connection)."""
    rest = url.split("://", 1)[-1]
    hostport, _, path = rest.partition("/")
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(*_address(hostport)), 1.0)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n".encode())
        status_line = await asyncio.wait_for(reader.readline(), 2.0)
        return status_line[9:12] == b"200"
    except (OSError, TimeoutError):
        return False
    finally:
        await _close(writer)


async def _wait_ready(process: subprocess.Popen, component: dict[str, Any], deadline: float) -> str | None:
    """None once the process is ready; else why not (it exited, or ``deadline`` passed)."""
    while True:
        code = process.poll()
        if code is not None:
            return f"the {component['component']} exited during start-up (exit code {code})"
        if await _ready(component["ready_url"]):
            return None
        if time.monotonic() >= deadline:
            return (
                f"the {component['component']} was not ready within the wake timeout; raise the local backend's "
                "startup_timeout if the model needs longer to load"
            )
        await asyncio.sleep(READY_POLL_SECONDS)


def _log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _without_header(head: bytes, name: bytes) -> bytes:
    lines = head[:-4].split(b"\r\n")
    kept = [lines[0]] + [line for line in lines[1:] if line.partition(b":")[0].strip().lower() != name]
    return b"\r\n".join(kept) + b"\r\n\r\n"


def _no_delay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def _close(writer: asyncio.StreamWriter) -> None:
    try:
        writer.close()
        await writer.wait_closed()
    except (ConnectionError, OSError):
        pass


async def serve(port: int, state_file: Path, host: str = "127.0.0.1", **options: float) -> None:
    """Run the proxy until SIGTERM/SIGINT; ``options`` are :class:`EndpointProxy`'s shadow settings."""
    proxy = EndpointProxy(state_file, **options)  # type: ignore[arg-type]
    proxy.start_shadow_workers()
    proxy.start_scaler()
    server = await asyncio.start_server(proxy.handle, host, port, reuse_address=True, limit=MAX_HEAD_BYTES)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    logger.info("Endpoint proxy on http://%s:%d (state %s, pid %d)", host, port, state_file, os.getpid())
    async with server:
        await stop.wait()
    await proxy.stop_shadow_workers()
    logger.info("Endpoint proxy stopped: %s", json.dumps(proxy.stats))


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments and run the proxy."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--state", type=Path, required=True, help="JSON file naming the live upstream.")
    parser.add_argument("--shadow-queue-size", type=int, default=SHADOW_QUEUE_SIZE, help="Mirrored requests waiting.")
    parser.add_argument("--shadow-workers", type=int, default=SHADOW_WORKERS, help="Mirrored requests in flight.")
    parser.add_argument("--shadow-timeout", type=float, default=SHADOW_TIMEOUT, help="Seconds per mirrored request.")
    args = parser.parse_args(argv)
    for name in ("shadow_queue_size", "shadow_workers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}.")
    if args.shadow_timeout <= 0:
        parser.error(f"--shadow-timeout must be positive, got {args.shadow_timeout}.")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    options = {
        "shadow_queue_size": args.shadow_queue_size,
        "shadow_workers": args.shadow_workers,
        "shadow_timeout": args.shadow_timeout,
    }
    asyncio.run(serve(args.port, args.state, args.host, **options))


if __name__ == "__main__":
    main()
