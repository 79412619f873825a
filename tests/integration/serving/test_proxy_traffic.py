"""The endpoint proxy's live traffic: shadow mirroring that clients never see, per-request canary weights.

Real model servers (the session's predictors for versions 1 and 2, prediction log on) behind the real proxy
process; failing and hanging shadows are tiny loopback servers in this process.
"""

from __future__ import annotations

import time
import uuid

import numpy as np
import pytest

from tests.integration.serving.proxy_support import (
    KeepAliveClient,
    StubUpstream,
    logged_request_ids,
    running_proxy,
    write_state,
)
from tests.serving_support import MODEL_NAME

pytestmark = pytest.mark.integration


def _rows(serving_models, n: int) -> list[list[float]]:
    X = serving_models["v1"].X
    return [X[i % len(X)].tolist() for i in range(n)]


def _exchange(client: KeepAliveClient, rows, ids) -> tuple[list[tuple[int, bytes]], list[float]]:
    answers, seconds = [], []
    for row, request_id in zip(rows, ids, strict=True):
        status, body, elapsed = client.infer(row, request_id)
        answers.append((status, body))
        seconds.append(elapsed)
    return answers, seconds


def _settled_stats(client: KeepAliveClient, timeout: float = 10.0) -> dict:
    """The proxy's counters once no mirrored request is queued or in flight (a hanging one times out)."""
    deadline = time.time() + timeout
    while True:
        stats = client.get_json("/-/proxy/stats")
        done = stats["shadow_completed"] + stats["shadow_errors"] + stats["shadow_timeouts"]
        if done == stats["shadow_mirrored"] or time.time() > deadline:
            return stats
        time.sleep(0.1)


def test_shadow_mirrors_every_request_and_clients_see_the_same_bytes(predictor_servers, serving_models, tmp_path):
    primary, shadow = predictor_servers["v1"], predictor_servers["v2"]
    state = tmp_path / "endpoint.json"
    write_state(state, {"upstream": f"127.0.0.1:{primary.http_port}", "color": "blue", "version": "1"})
    run = uuid.uuid4().hex[:8]
    rows = _rows(serving_models, 30)
    ids = [f"{run}-{i}" for i in range(len(rows))]
    # Every mirrored request must reach the shadow: no abandoning one that a loaded machine makes slow (the
    # timeout has its own test).
    with running_proxy(state, tmp_path / "proxy.log", "--shadow-timeout", "60") as port:
        client = KeepAliveClient(port, MODEL_NAME)
        without_shadow, _ = _exchange(client, rows, ids)
        write_state(
            state,
            {
                "upstream": f"127.0.0.1:{primary.http_port}",
                "color": "blue",
                "version": "1",
                "shadow": {"upstream": f"127.0.0.1:{shadow.http_port}", "version": "2", "percent": 100},
            },
        )
        with_shadow, _ = _exchange(client, rows, ids)  # the same keep-alive connection sees the new route
        # A request without an id gets one from the proxy: the primary answers with it, the shadow logs it too.
        status, body, _ = client.infer(rows[0])
        stats = client.get_json("/-/proxy/stats")
        # Mirroring is asynchronous: let the queue drain before the proxy stops (stopping drops what is queued).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            sent = client.get_json("/-/proxy/stats")
            if sent["shadow_completed"] + sent["shadow_errors"] + sent["shadow_timeouts"] >= len(rows) + 1:
                break
            time.sleep(0.2)
        client.close()

    assert [s for s, _ in without_shadow] == [200] * len(rows)
    assert with_shadow == without_shadow  # status and body, byte for byte
    import json

    assert {json.loads(b)["model_version"] for _, b in with_shadow} == {"1"}
    assert status == 200
    generated_id = json.loads(body)["id"]
    assert generated_id and generated_id not in ids
    assert stats["shadow_mirrored"] == len(rows) + 1 and stats["shadow_dropped"] == 0
    # Both prediction logs hold the mirrored requests under the same ids, each with its own version.
    wanted = set(ids) | {generated_id}
    assert logged_request_ids(shadow.extra["prediction_log_dir"], wanted) == dict.fromkeys(wanted, "2")
    primary_log = logged_request_ids(primary.extra["prediction_log_dir"], wanted)
    assert primary_log == dict.fromkeys(wanted, "1")


@pytest.mark.parametrize("failure", ["errors", "hangs"])
def test_a_failing_or_hanging_shadow_changes_nothing_for_clients(failure, predictor_servers, serving_models, tmp_path):
    primary = predictor_servers["v1"]
    state = tmp_path / "endpoint.json"
    base = {"upstream": f"127.0.0.1:{primary.http_port}", "color": "blue", "version": "1"}
    write_state(state, base)
    rows = _rows(serving_models, 60)
    run = uuid.uuid4().hex[:8]
    ids = [f"{run}-{i}" for i in range(len(rows))]
    if failure == "errors":
        stub, options = StubUpstream(status=500), ()
    else:
        # A small queue and timeout, so a hanging shadow fills the queue within the test and drops are counted.
        stub = StubUpstream(delay=30.0)
        options = ("--shadow-queue-size", "8", "--shadow-workers", "2", "--shadow-timeout", "1.0")
    with stub, running_proxy(state, tmp_path / "proxy.log", *options) as port:
        client = KeepAliveClient(port, MODEL_NAME)
        _exchange(client, rows[:10], [f"warm-{i}" for i in range(10)])
        baseline, baseline_seconds = _exchange(client, rows, ids)
        write_state(state, {**base, "shadow": {"upstream": stub.address, "version": "4", "percent": 100}})
        shadowed, shadowed_seconds = _exchange(client, rows, ids)
        stats = _settled_stats(client)
        client.close()

    assert shadowed == baseline and {s for s, _ in shadowed} == {200}
    # The live path never waits for the shadow: p99 stays within a few ms of the same run without one.
    baseline_p99 = float(np.percentile(baseline_seconds, 99))
    shadowed_p99 = float(np.percentile(shadowed_seconds, 99))
    assert shadowed_p99 < max(3 * baseline_p99, baseline_p99 + 0.02), (baseline_p99, shadowed_p99)
    assert max(shadowed_seconds) < 0.5  # a hanging shadow (30 s) would show here
    if failure == "errors":
        assert sorted(stub.request_ids) == sorted(ids), stats  # every request mirrored, with the client's ids
        assert stats["shadow_errors"] == len(ids) and stats["shadow_dropped"] == 0
    else:
        # Two workers hang on the stub; the queue holds 8; the rest are dropped and counted, never waited for.
        assert stats["shadow_dropped"] > 0
        assert stats["shadow_mirrored"] + stats["shadow_dropped"] == len(ids)
        assert set(stub.request_ids) <= set(ids) and stub.request_ids


def test_canary_weight_is_per_request_on_one_connection(predictor_servers, serving_models, tmp_path):
    import json

    stable, canary = predictor_servers["v1"], predictor_servers["v2"]
    state = tmp_path / "endpoint.json"
    write_state(
        state,
        {
            "upstream": f"127.0.0.1:{stable.http_port}",
            "color": "blue",
            "version": "1",
            "canary": {"upstream": f"127.0.0.1:{canary.http_port}", "version": "2", "weight": 30},
        },
    )
    n = 400
    rows = _rows(serving_models, n)
    with running_proxy(state, tmp_path / "proxy.log") as port:
        client = KeepAliveClient(port, MODEL_NAME)
        before = client.get_json("/-/proxy/stats")
        answers, _ = _exchange(client, rows, [None] * n)
        health = client.get_json(f"/v2/models/{MODEL_NAME}")  # non-inference paths go to the primary
        stats = client.get_json("/-/proxy/stats")
        client.close()

    versions = [json.loads(body)["model_version"] for status, body in answers if status == 200]
    assert len(versions) == n
    on_canary = versions.count("2")
    # Binomial(400, 0.3): mean 120, sd 9.2; 5 sd either side fails by chance about once in 3 million runs.
    assert 74 <= on_canary <= 166, on_canary
    # One client connection carried all of it (http.client would have reconnected after a close).
    assert stats["connections"] == before["connections"]
    assert stats["canary"] == on_canary and stats["primary"] == n - on_canary + 1  # + the metadata request
    assert health["name"] == MODEL_NAME
