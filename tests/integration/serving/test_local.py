"""The local serving backend: blue/green replacement behind a stable port, through Airflow, with real servers."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from include.fraud_example import FEATURE_SERVICE
from tests.airflow_helpers import run_dag, task_states, task_xcom
from tests.serving_support import MODEL_NAME, free_port, post_json

pytestmark = pytest.mark.integration


@pytest.fixture
def local_endpoint(tmp_path, monkeypatch, mlflow_connection, registered_versions):
    from mlflow import MlflowClient

    from mlops_provider.hooks.local_serving import LocalServingHook

    port = free_port()
    monkeypatch.setenv("AIRFLOW__MLOPS__LOCAL_ROOT", str(tmp_path / "mlops"))
    monkeypatch.setenv("AIRFLOW__MLOPS__LOCAL_SERVING_PORT", str(port))
    client = MlflowClient(tracking_uri=mlflow_connection.url)
    try:
        client.delete_registered_model_alias(MODEL_NAME, "champion")
    except Exception:  # no alias yet
        pass
    hook = LocalServingHook()
    try:
        yield hook, client
    finally:
        hook.stop_all()


def _candidate(serving_models, registered_versions, key, uri=None):
    """The gate's decision; its run carries the training-set lineage that names the FeatureService."""
    from mlflow import MlflowClient

    from mlops_provider.hooks.mlflow import MlflowHook

    client: MlflowClient = MlflowHook().get_client()
    version = registered_versions.get(key) or registered_versions["v1"]
    return {
        "decision": "promote",
        "model_name": MODEL_NAME,
        "candidate_version": registered_versions.get(key, "99"),
        "artifact_uri": uri or serving_models[key].uri,
        "run_id": client.get_model_version(MODEL_NAME, version).run_id,
    }


def _predict(url: str, X) -> list[float]:
    status, body = post_json(
        f"{url}/v2/models/{MODEL_NAME}/infer",
        {"inputs": [{"name": "input-0", "shape": list(X.shape), "datatype": "FP32", "data": X.ravel().tolist()}]},
    )
    assert status == 200, body
    return body["outputs"][0]["data"]


def _expected(model, X):
    import xgboost as xgb

    return model.booster.predict(xgb.DMatrix(X, feature_names=model.booster.feature_names))


def test_blue_green_replace_through_airflow(local_endpoint, serving_models, registered_versions):
    from mlops_provider.utils.process import process_alive

    hook, client = local_endpoint
    X = serving_models["v1"].X[:3]

    dr = run_dag(
        "serving_rollout_sync",
        conf={"backend": "local", "candidate": _candidate(serving_models, registered_versions, "v1")},
    )
    assert task_states(dr) == {"deploy": "success", "smoke_test": "success"}
    first = task_xcom(dr, "deploy")
    assert first["status"] == "promoted" and first["backend"] == "local" and first["strategy"] == "blue_green"
    assert first["endpoint_url"] == hook.endpoint_url and first["revision"] == "blue"
    np.testing.assert_allclose(_predict(hook.endpoint_url, X), _expected(serving_models["v1"], X), rtol=1e-6)
    blue = hook.active()
    proxy_pid = hook._read_state()["proxy"]["pid"]
    assert client.get_model_version_by_alias(MODEL_NAME, "champion").version == registered_versions["v1"]

    dr = run_dag(
        "serving_rollout_sync",
        conf={"backend": "local", "candidate": _candidate(serving_models, registered_versions, "v2")},
    )
    assert task_states(dr) == {"deploy": "success", "smoke_test": "success"}
    assert task_xcom(dr, "deploy")["revision"] == "green"
    np.testing.assert_allclose(_predict(hook.endpoint_url, X), _expected(serving_models["v2"], X), rtol=1e-6)
    green = hook.active()
    assert not process_alive(blue["predictor"]["pid"])  # the old colour was stopped after the switch
    assert process_alive(green["predictor"]["pid"]) and hook._read_state()["proxy"]["pid"] == proxy_pid
    assert client.get_model_version_by_alias(MODEL_NAME, "champion").version == registered_versions["v2"]

    # Re-running the same version is a no-op: nothing restarted.
    dr = run_dag(
        "serving_rollout_sync",
        conf={"backend": "local", "candidate": _candidate(serving_models, registered_versions, "v2")},
    )
    assert task_states(dr)["deploy"] == "success"
    assert hook.active()["predictor"]["pid"] == green["predictor"]["pid"]

    # A version whose server cannot start is discarded; the live one keeps serving.
    broken = _candidate(serving_models, registered_versions, "broken", serving_models["broken"].uri)
    dr = run_dag("serving_rollout_sync", conf={"backend": "local", "candidate": broken})
    assert task_states(dr)["deploy"] == "failed"
    result = task_xcom(dr, "deploy")
    assert result["status"] == "rolled_back" and result["reason"] == "ServerExited"
    assert "No XGBoost model file" in result["message"]
    # A version that fails its analysis (predictions outside the allowed range) is discarded too.
    dr = run_dag(
        "serving_rollout_strict",
        conf={"backend": "local", "candidate": _candidate(serving_models, registered_versions, "v1")},
    )
    assert task_states(dr)["deploy"] == "failed"
    assert task_xcom(dr, "deploy")["reason"] == "AnalysisFailed"
    assert hook.active()["predictor"]["pid"] == green["predictor"]["pid"]
    assert hook._read_state().get("candidate") is None
    np.testing.assert_allclose(_predict(hook.endpoint_url, X), _expected(serving_models["v2"], X), rtol=1e-6)
    assert client.get_model_version_by_alias(MODEL_NAME, "champion").version == registered_versions["v2"]

    # The prediction log of the served requests lands in the data zone, flushed when a colour stops.
    hook.stop_all()
    logs = sorted((hook.settings.local_root / "data" / "predictions" / MODEL_NAME).glob("dt=*/*.parquet"))
    assert logs, "no prediction log written"
    import pandas as pd

    # Logging is the server's setting, not the client's: the 9 rows this test sent and the rollout's own
    # analysis requests are all there.
    logged = pd.concat(pd.read_parquet(f) for f in logs)
    assert len(logged) > 9
    assert set(logged["model_version"]) == {registered_versions["v1"], registered_versions["v2"]}
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{hook.endpoint_url}/v2/health/ready", timeout=2)


def test_endpoint_outlives_the_process_that_started_it(local_endpoint, serving_models, repo_root):
    """Servers run in their own session: the endpoint stays up after the starting process (a task) exits."""
    hook, _ = local_endpoint
    script = textwrap.dedent(
        f"""
        from mlops_provider.hooks.local_serving import LocalServingHook
        hook = LocalServingHook()
        hook.ensure_proxy()
        hook.switch(hook.start_slot({MODEL_NAME!r}, {serving_models["v1"].uri!r}, "1"))
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=repo_root, timeout=120)
    with urllib.request.urlopen(f"{hook.endpoint_url}/v2/health/ready", timeout=5) as response:
        assert json.loads(response.read()) == {"ready": True}
    X = serving_models["v1"].X[:1]
    np.testing.assert_allclose(_predict(hook.endpoint_url, X), _expected(serving_models["v1"], X), rtol=1e-6)


def test_local_endpoint_with_the_feast_transformer(
    monkeypatch, mlflow_connection, registered_versions, serving_models, feature_store
):
    """With the feature store applied, the deploy task puts the transformer in front: entity requests and feature
    tensors are both answered on the stable endpoint."""
    import xgboost as xgb

    from mlops_provider.hooks.local_serving import LocalServingHook
    from tests.fixtures.model_server import NOW

    monkeypatch.setenv("AIRFLOW__MLOPS__LOCAL_ROOT", str(feature_store["root"] / "mlops"))
    monkeypatch.setenv("AIRFLOW__MLOPS__LOCAL_SERVING_PORT", str(free_port()))
    hook = LocalServingHook()
    try:
        candidate = _candidate(serving_models, registered_versions, "v1")
        dr = run_dag("serving_rollout_sync", conf={"backend": "local", "candidate": candidate})
        assert task_states(dr) == {"deploy": "success", "smoke_test": "success"}
        slot = hook.active()
        assert slot["transformer"] and slot["upstream"].endswith(str(slot["transformer"]["http_port"]))
        # The FeatureService comes from the candidate's training-set lineage, passed on to the transformer.
        cmdline = Path(f"/proc/{slot['transformer']['pid']}/cmdline").read_bytes().split(b"\0")
        assert f"--feature_service={FEATURE_SERVICE}".encode() in cmdline
        entity = {
            "customer_id": 1, "merchant_id": 10, "amount": 12.0, "channel": "pos", "card_present": 1,
            "merchant_category": "grocery", "event_timestamp": NOW.isoformat(),
        }  # fmt: skip
        status, body = post_json(f"{hook.endpoint_url}/v1/models/{MODEL_NAME}:predict", {"instances": [entity]})
        assert status == 200, body
        assert 0.0 <= body["predictions"][0] <= 1.0
        X = serving_models["v1"].X[:2]
        booster = serving_models["v1"].booster
        expected = booster.predict(xgb.DMatrix(X, feature_names=booster.feature_names))
        np.testing.assert_allclose(_predict(hook.endpoint_url, X), expected, rtol=1e-6)
        status, body = post_json(
            f"{hook.endpoint_url}/v1/models/{MODEL_NAME}:predict", {"instances": [{**entity, "customer_id": 424242}]}
        )
        assert status == 400 and "unknown entity" in body["error"].lower()
    finally:
        hook.stop_all()
    import pandas as pd

    # Logging is the server's setting: the entity request, the 2-row tensor and the rollout's own analysis traffic
    # (through the transformer, over gRPC) are all logged; no client can switch it off.
    logs = sorted((hook.settings.local_root / "data" / "predictions" / MODEL_NAME).glob("dt=*/*.parquet"))
    assert len(pd.concat(pd.read_parquet(f) for f in logs)) > 3


def _listening_hosts(port: int) -> set[str]:
    """Addresses with a TCP socket listening on ``port``, read from /proc/net/tcp and tcp6."""
    import ipaddress

    hosts = set()
    for table, width in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state != "0A" or int(hex_port, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(address)
            # The kernel prints each 32-bit word in host (little-endian) order.
            packed = b"".join(raw[i : i + 4][::-1] for i in range(0, width, 4))
            ip = ipaddress.ip_address(packed)
            hosts.add(str(getattr(ip, "ipv4_mapped", None) or ip))
    return hosts


def test_local_servers_listen_on_loopback_only(local_endpoint, serving_models):
    """The proxy and the predictor's REST and gRPC ports accept connections from this machine only."""
    hook, _ = local_endpoint
    hook.ensure_proxy()
    slot = hook.start_slot(MODEL_NAME, serving_models["v1"].uri, "1", prediction_log=False)
    ports = {
        "proxy": hook.settings.local_serving_port,
        "predictor http": slot["predictor"]["http_port"],
        "predictor grpc": slot["predictor"]["grpc_port"],
    }
    for name, port in ports.items():
        assert _listening_hosts(port) == {"127.0.0.1"}, (name, port, _listening_hosts(port))


def _processes_with_env(marker: str) -> list[int]:
    """Live processes (not zombies) whose environment contains ``marker``."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (
                marker.encode() in (proc / "environ").read_bytes()
                and (proc / "stat").read_text().split(")")[-1].split()[0] != "Z"
            ):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


@pytest.mark.parametrize("when", ["serving", "starting"])
def test_make_serve_stops_everything_on_ctrl_c(when, local_endpoint, registered_versions, repo_root):
    """SIGINT to ``include/serve.py`` (Ctrl-C in ``make serve``), once serving or while the model server starts,
    leaves no proxy, no model server and no listening endpoint port behind."""
    import os
    import signal
    import time

    from mlops_provider.utils.process import port_open, process_alive, read_pid

    hook, client = local_endpoint
    client.set_registered_model_alias(MODEL_NAME, "champion", registered_versions["v1"])
    port = hook.settings.local_serving_port
    marker = f"AIRFLOW__MLOPS__LOCAL_ROOT={hook.settings.local_root}"
    process = subprocess.Popen(
        [sys.executable, "include/serve.py", "--model-name", MODEL_NAME, "--no-transformer"],
        cwd=repo_root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(repo_root), os.environ.get("PYTHONPATH", "")])},
    )
    try:
        deadline = time.time() + 180
        if when == "serving":
            lines = []
            while time.time() < deadline and (line := process.stdout.readline().decode()):
                lines.append(line)
                if line.startswith("Ctrl-C stops it."):
                    break
            assert lines and lines[-1].startswith("Ctrl-C"), "".join(lines)
            with urllib.request.urlopen(f"{hook.endpoint_url}/v2/health/ready", timeout=5) as response:
                assert response.status == 200
        else:  # the proxy listens, the predictor is starting
            while time.time() < deadline and not (
                port_open(port) and list((hook.root / "pids").glob("*predictor.pid"))
            ):
                assert process.poll() is None, process.stdout.read().decode()
                time.sleep(0.05)
            assert hook.active() is None
        started = set(_processes_with_env(marker)) | {read_pid(f) for f in (hook.root / "pids").glob("*.pid")}
        started.discard(None)
        assert len(started) >= 2 and port_open(port), started  # serve.py and the servers it started
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=60)[0].decode()
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert "stopped" in output
    assert _processes_with_env(marker) == [], output
    assert [pid for pid in started if process_alive(pid)] == [], output
    assert not port_open(port)
