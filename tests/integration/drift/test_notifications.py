"""Alert notifiers against a real HTTP server on 127.0.0.1, directly and from tasks run through Airflow."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mlops_provider.notifications import MlopsLogNotifier, MlopsWebhookNotifier, alert_notifier
from mlops_provider.notifications.alerts import AlertDeliveryError
from tests.airflow_helpers import run_dag, task_states

pytestmark = pytest.mark.integration


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict] = []
    status = 200

    def do_POST(self):  # noqa: N802 (http.server API)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(
            {"path": self.path, "auth": self.headers.get("Authorization"), "body": json.loads(body)}
        )
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook(monkeypatch):
    _Receiver.received = []
    _Receiver.status = 200
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLOPS_ALERTS",
        json.dumps(
            {"conn_type": "http", "host": url, "password": "s3cret-token", "extra": {"endpoint": "/hooks/mlops"}}
        ),
    )
    monkeypatch.setenv("AIRFLOW__MLOPS__ALERT_NOTIFIER", "webhook")
    yield _Receiver
    server.shutdown()
    server.server_close()


def test_webhook_notifier_posts_json_with_bearer_token(webhook):
    status = MlopsWebhookNotifier(title="hello").send({"title": "hello", "details": {"a": 1}})
    assert status == 200
    assert webhook.received == [
        {"path": "/hooks/mlops", "auth": "Bearer s3cret-token", "body": {"title": "hello", "details": {"a": 1}}}
    ]


def test_webhook_errors_are_typed_and_do_not_leak_the_token(webhook, caplog):
    webhook.status = 500
    with pytest.raises(AlertDeliveryError, match=r"answered HTTP 500") as err:
        MlopsWebhookNotifier().send({"title": "x"})
    assert "s3cret-token" not in str(err.value)
    assert "s3cret-token" not in caplog.text


def test_drift_alert_task_posts_the_verdict_through_airflow(webhook):
    verdict = {
        "drift_detected": True,
        "drift_share": 0.75,
        "drifted_features": ["amount"],
        "reasons": ["critical features drifted: amount"],
        "model_name": "fraud_detector",
        "champion_version": "4",
        "report_uri": "file:///r/report.html",
        "mlflow_run_id": "abc",
    }
    dag_run = run_dag("drift_asset_producer", conf={"verdict": verdict})
    assert task_states(dag_run)["alert_drift"] == "success"
    [alert] = [r["body"] for r in webhook.received]
    assert alert["title"] == "Drift on fraud_detector v4: retraining requested"
    assert alert["dag_id"] == "drift_asset_producer" and alert["task_id"] == "alert_drift"
    assert alert["details"]["reasons"] == ["critical features drifted: amount"]
    assert alert["details"]["drift_share"] == 0.75


def test_failed_rollout_callback_posts_the_error_and_reason(webhook):
    dag_run = run_dag("drift_failure_alert")
    assert task_states(dag_run) == {"deploy": "failed"}
    [alert] = [r["body"] for r in webhook.received]
    assert alert["title"] == "Rollout of fraud_detector failed"
    assert alert["task_id"] == "deploy"
    assert alert["error"] == "RolloutFailedError: canary did not become ready"
    assert alert["details"]["reason"] == "ProgressDeadlineExceeded"


def test_log_notifier_is_the_default_and_writes_one_json_line(monkeypatch, caplog):
    monkeypatch.delenv("AIRFLOW__MLOPS__ALERT_NOTIFIER", raising=False)
    notifier = alert_notifier(title="Drift on m v1", details={"drift_share": 0.5})
    assert isinstance(notifier, MlopsLogNotifier)
    with caplog.at_level(logging.WARNING, logger="mlops_provider.notifications.alerts"):
        notifier.notify({})
    [line] = [r.getMessage() for r in caplog.records if r.name == "mlops_provider.notifications.alerts"]
    payload = json.loads(line.split("MLOps alert: ", 1)[1])
    assert payload["title"] == "Drift on m v1" and payload["details"] == {"drift_share": 0.5}
    with pytest.raises(ValueError, match="alert_notifier='pager'"):
        alert_notifier(kind="pager")
