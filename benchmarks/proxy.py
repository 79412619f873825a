"""Latency the local endpoint proxy adds: the predictor called directly vs through ``mlops_serving.proxy``.

Starts, in the same run and on loopback, a real predictor (``python -m mlops_serving`` from ``.venv-serving``, a small
XGBoost model) and the proxy in front of it, then sends single-row V2 JSON requests sequentially over one
keep-alive connection (one write per request, TCP_NODELAY) to:

* ``bare``: the predictor itself (the baseline);
* ``proxy``: the proxy routing to it;
* ``proxy_shadow``: the proxy also mirroring every request to a second predictor (the shadow's cost on the live
  path should be near zero: mirroring is asynchronous).

Targets are timed in interleaved rounds (default 5) and the median round is reported, with the worst round's p99:
the machine is shared and other work comes in bursts. Prints p50/p99, the proxy's added milliseconds and the ratios
to ``bare``; writes ``build/bench/proxy.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORK = ROOT / "build" / "bench" / "proxy"


def _sequential(port: int, request: bytes, n: int) -> list[float]:
    """Send ``request`` ``n`` times over one keep-alive connection; return each round trip in seconds.

    One ``sendall`` per request with TCP_NODELAY, as a tuned client sends: ``http.client`` writes the head and the
    body separately, and the second small write then waits on the peer's delayed ACK (tens of ms on loopback),
    which would measure the client rather than the servers.
    """
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    stream = sock.makefile("rb")
    seconds = []
    for _ in range(n):
        started = time.perf_counter()
        sock.sendall(request)
        status = stream.readline()
        length = 0
        while (line := stream.readline()) != b"\r\n":
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        stream.read(length)
        seconds.append(time.perf_counter() - started)
        assert status.split()[1] == b"200", status
    stream.close()
    sock.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000, help="Requests per target per round.")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    from benchmarks._records import emit, record
    from tests.integration.serving.proxy_support import write_state
    from tests.loopback import free_port, stop, wait_ready
    from tests.serving_support import MODEL_NAME, SERVING_PYTHON, save_mlflow_model, start_server, train_booster

    WORK.mkdir(parents=True, exist_ok=True)
    booster, X = train_booster(seed=1)
    model_dir = WORK / "model"
    if model_dir.exists():
        import shutil

        shutil.rmtree(model_dir)
    uri = save_mlflow_model(booster, model_dir)
    common = [f"--storage_uri={uri}", "--model_version=1", "--access_log=false"]
    servers = [start_server(common, WORK / f"predictor-{i}.log") for i in range(2)]
    proxies: list[subprocess.Popen] = []
    try:
        from tests.serving_support import wait_server

        for server in servers:
            wait_server(server)
        primary, shadow = servers
        env = {**os.environ, "PYTHONPATH": str(ROOT / "kserve")}
        ports = {}
        for name, state in (
            ("proxy", {"upstream": f"127.0.0.1:{primary.http_port}"}),
            (
                "proxy_shadow",
                {
                    "upstream": f"127.0.0.1:{primary.http_port}",
                    "shadow": {"upstream": f"127.0.0.1:{shadow.http_port}", "percent": 100},
                },
            ),
        ):
            state_file = WORK / f"{name}.json"
            write_state(state_file, state)
            port = free_port()
            log = WORK / f"{name}.log"
            with log.open("wb") as handle:
                process = subprocess.Popen(
                    [str(SERVING_PYTHON), "-m", "mlops_serving.proxy", "--port", str(port), "--state", str(state_file)],
                    stdout=handle, stderr=subprocess.STDOUT, env=env,
                )  # fmt: skip
            proxies.append(process)
            wait_ready(f"http://127.0.0.1:{port}/-/proxy/stats", process, log, 30)
            ports[name] = port
        ports = {"bare": primary.http_port, **ports}
        row = X[0].tolist()
        body = json.dumps(
            {"inputs": [{"name": "input-0", "shape": [1, len(row)], "datatype": "FP32", "data": row}]}
        ).encode()
        request = (
            f"POST /v2/models/{MODEL_NAME}/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        for port in ports.values():  # warm-up: connections, caches, the booster
            _sequential(port, request, 200)
        rounds: dict[str, list[dict[str, float]]] = {name: [] for name in ports}
        for _ in range(args.rounds):
            for name, port in ports.items():
                ms = np.asarray(_sequential(port, request, args.requests)) * 1000
                rounds[name].append({"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99))})
        summary = {}
        for name, results in rounds.items():
            summary[name] = {
                "p50": statistics.median(r["p50"] for r in results),
                "p99": statistics.median(r["p99"] for r in results),
                "worst_p99": max(r["p99"] for r in results),
            }
    finally:
        for process in proxies:
            stop(process)
        for server in servers:
            server.stop()

    bare = summary["bare"]
    records = []
    for name, values in summary.items():
        baseline = None if name == "bare" else bare
        records.append(record(f"{name}_p50_ms", values["p50"], "ms", baseline["p50"] if baseline else None))
        records.append(record(f"{name}_p99_ms", values["p99"], "ms", baseline["p99"] if baseline else None))
        records.append(record(f"{name}_worst_round_p99_ms", values["worst_p99"], "ms"))
        if baseline:
            records.append(record(f"{name}_added_p50_ms", values["p50"] - bare["p50"], "ms"))
            records.append(record(f"{name}_added_p99_ms", values["p99"] - bare["p99"], "ms"))
    emit("proxy", records)


if __name__ == "__main__":
    main()
