"""MLflow side of training: the evaluation gate's criteria, the MLflow hook's connection handling and credentials."""

from __future__ import annotations

import json


# ---------------------------------------------------------------------------------------------- gate
def test_gate_criteria_pass_fail_and_segments():
    from mlops_provider.operators.mlflow import DEFAULT_CRITERIA, evaluate_criteria, merge_criteria

    criteria = merge_criteria(
        DEFAULT_CRITERIA, {"min_metrics": {"pr_auc": 0.3}, "segments": {"column": "channel", "min_rows": 1}}
    )
    assert criteria["min_metrics"] == {"roc_auc": 0.65, "pr_auc": 0.3}
    good = {"roc_auc": 0.9, "pr_auc": 0.5, "log_loss": 0.2}
    failures, checks = evaluate_criteria(criteria, good, {"roc_auc": 0.88, "pr_auc": 0.5, "log_loss": 0.21})
    assert failures == [] and all(c["passed"] for c in checks)
    failures, _ = evaluate_criteria(criteria, good, {"roc_auc": 0.95, "pr_auc": 0.5, "log_loss": 0.1})
    assert any(f.startswith("roc_auc: candidate 0.9000 vs champion 0.9500") for f in failures)
    assert any(f.startswith("log_loss:") for f in failures)
    failures, _ = evaluate_criteria(
        criteria, good, None, {"atm": {"roc_auc": 0.5}, "pos": {"roc_auc": 0.9}}, {"pos": {"roc_auc": 0.99}}
    )
    assert any("segment channel=atm" in f for f in failures) and any("segment channel=pos" in f for f in failures)
    assert merge_criteria(DEFAULT_CRITERIA, {"segments": None}).get("segments") is None


# ---------------------------------------------------------------------------------------------- hook
def test_mlflow_hook_local_default_and_connection_parsing(monkeypatch):
    from mlops_provider.hooks.mlflow import MlflowHook
    from mlops_provider.settings import get_settings

    monkeypatch.delenv("AIRFLOW_CONN_MLFLOW_DEFAULT", raising=False)
    local = MlflowHook()
    assert local.tracking_uri == get_settings().mlflow_local_tracking_uri and local.ui_url() is None
    assert local.credential_env() == {}
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_PROD",
        json.dumps({"conn_type": "mlflow", "host": "mlflow.internal", "schema": "https", "port": 8443,
                    "login": "svc", "password": "s3cret", "extra": {"ui_url": "https://ml.example.com"}}),
    )  # fmt: skip
    hook = MlflowHook("mlflow_prod")
    assert hook.tracking_uri == "https://mlflow.internal:8443" and hook.registry_uri == hook.tracking_uri
    assert hook.model_version_url("fraud", 3) == "https://ml.example.com/#/models/fraud/versions/3"
    import os

    assert "MLFLOW_TRACKING_PASSWORD" not in os.environ
    with hook.credentials():
        assert os.environ["MLFLOW_TRACKING_USERNAME"] == "svc" and os.environ["MLFLOW_TRACKING_PASSWORD"] == "s3cret"
    assert "MLFLOW_TRACKING_PASSWORD" not in os.environ
    client = hook.get_client()
    import mlflow

    assert isinstance(client, mlflow.MlflowClient)
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_TOKEN",
        json.dumps({"conn_type": "mlflow", "host": "https://m.example.com/", "password": "tok",
                    "extra": {"auth_type": "token", "registry_uri": "https://reg.example.com"}}),
    )  # fmt: skip
    token = MlflowHook("mlflow_token")
    assert token.tracking_uri == "https://m.example.com" and token.registry_uri == "https://reg.example.com"
    assert token.credential_env() == {"MLFLOW_TRACKING_TOKEN": "tok"}
    ok, message = MlflowHook("mlflow_prod").test_connection()
    assert ok is False and "not reachable" in message and "s3cret" not in message


def test_provider_info_declares_the_mlflow_connection_form():
    from mlops_provider.get_provider_info import get_provider_info

    conn = next(c for c in get_provider_info()["connection-types"] if c["connection-type"] == "mlflow")
    assert conn["hook-class-name"] == "mlops_provider.hooks.mlflow.MlflowHook"
    assert {"registry_uri", "ui_url", "auth_type", "insecure_tls"} <= set(conn["conn-fields"])


def test_mlflow_hook_sends_credentials_only_inside_its_scope(monkeypatch):
    """A loopback HTTP server records what the real MLflow client sends through the hook's client."""
    import base64
    import os
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from mlops_provider.hooks.mlflow import MlflowHook

    seen: list[tuple[str, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server API
            seen.append((self.path.split("?")[0], self.headers.get("Authorization")))
            body = b'{"experiments": []}' if "experiments" in self.path else b'{"registered_models": []}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):  # noqa: N802 - search_experiments is a POST
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.do_GET()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_AUTH", json.dumps({"conn_type": "mlflow", "host": url, "login": "svc",
                                                                   "password": "s3cret"}))  # fmt: skip
        hook = MlflowHook("mlflow_auth")
        assert hook.test_connection() == (True, f"Connected to MLflow at {url}.")
        hook.get_client().search_experiments(max_results=1)
        expected = "Basic " + base64.b64encode(b"svc:s3cret").decode()
        assert seen and all(auth == expected for _, auth in seen)
        assert "/api/2.0/mlflow/experiments/search" in {path for path, _ in seen}
        assert "MLFLOW_TRACKING_USERNAME" not in os.environ and "MLFLOW_TRACKING_PASSWORD" not in os.environ
    finally:
        server.shutdown()
