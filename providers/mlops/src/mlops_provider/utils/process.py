"""Supervise long-running child processes: start one with a pid file, wait until healthy, stop it.

Children run in their own session (``start_new_session``), so they outlive the Airflow task that started them,
and are stopped as a process group (SIGTERM, then SIGKILL). A pid is only trusted when the process's command
line still carries a marker, which guards against pid reuse.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

# Processes this interpreter started, so they can be reaped (a dead child stays a zombie until waited for).
_CHILDREN: dict[int, subprocess.Popen] = {}


class ProcessExitedError(RuntimeError):
    """The child exited before it became healthy."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex((host, port)) == 0


def process_alive(pid: int | None, marker: str | None = None) -> bool:
    """Return True when ``pid`` runs (not a zombie) and, with ``marker``, its command line contains it."""
    if not pid:
        return False
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path(f"/proc/{pid}")
    if proc.exists():
        try:
            if (proc / "stat").read_text().split(")")[-1].split()[0] == "Z":
                return False
            if marker is None:
                return True
            return marker in (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return False
    return True


def start_process(
    argv: Sequence[str],
    *,
    log_file: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    pid_file: Path | None = None,
) -> int:
    """Start ``argv`` in its own session with output appended to ``log_file``; return its pid.

    :param pid_file: where to record the pid (written atomically), so another process can find and stop it.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        process = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=str(cwd) if cwd is not None else None,
            start_new_session=True,  # survive the starting task; stopped as a process group
        )
    _CHILDREN[process.pid] = process
    if pid_file is not None:
        write_pid_file(pid_file, process.pid)
    return process.pid


def write_pid_file(pid_file: Path, pid: int) -> None:
    """Record ``pid`` in ``pid_file`` atomically (temporary file, then rename)."""
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = pid_file.with_name(f".{pid_file.name}.tmp")
    tmp.write_text(str(pid))
    os.replace(tmp, pid_file)


def read_pid(pid_file: Path) -> int | None:
    """Return the pid recorded in ``pid_file``, or None."""
    try:
        return int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def wait_healthy(
    pid: int,
    healthy: Callable[[], bool],
    *,
    timeout: float,
    marker: str | None = None,
    interval: float = 0.2,
) -> bool:
    """Poll ``healthy()`` until it returns True (True) or ``timeout`` passes (False).

    :raises ProcessExitedError: the process exited meanwhile.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # The marker guards against pid reuse for long-lived processes; a child we are starting is ours, and
        # its command line may not show the marker yet, so here only "has it exited" counts.
        if not process_alive(pid, None if pid in _CHILDREN else marker):
            raise ProcessExitedError(f"process {pid} exited")
        if healthy():
            return True
        time.sleep(interval)
    return False


def stop_process(pid: int | None, timeout: float = 15.0, marker: str | None = None) -> None:
    """Stop a process group: SIGTERM (graceful), SIGKILL after ``timeout``; reap it when it is our child."""
    if not process_alive(pid, marker):
        _CHILDREN.pop(pid or -1, None)
        return
    assert pid is not None
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and process_alive(pid):
            time.sleep(0.05)
        if not process_alive(pid):
            break
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        child.wait(timeout=5)
