"""The MLOps page in a real headless Chromium, served by the real Airflow API server with the plugin loaded.

The API server is started on 127.0.0.1 with this session's Airflow home and ``plugins/`` (set by
conftest), pointed at the session's MLflow server. The registry holds a model with ``champion`` and
``challenger`` versions whose tags record gate decisions and deployment state; the data store holds
drift-check summaries and reports in the drift operator's format.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.loopback import free_port, serving

pytestmark = [pytest.mark.integration, pytest.mark.browser]

MODEL = f"ui_test_model_{uuid.uuid4().hex[:8]}"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
XSS = "<script>window.__pwned = 1</script>"


@pytest.fixture(scope="module")
def registry(mlflow_server):
    """Three versions: v1 rejected, v2 champion (deployed), v3 challenger; tags as the gate/deploy code writes them."""
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server.url)
    experiment = client.get_experiment_by_name("ui-test") or client.get_experiment(client.create_experiment("ui-test"))
    client.create_registered_model(MODEL)
    gate = {
        "1": {"gate.decision": "reject", "gate.reasons": "roc_auc 0.71 < 0.80"},
        "2": {
            "gate.decision": "promote",
            "gate.reasons": "roc_auc 0.91 >= champion 0.88",
            "deployment.status": "promoted",
        },
        "3": {"gate.decision": "promote", "gate.reasons": f"roc_auc 0.93 >= champion 0.91 {XSS}"},
    }
    for version, tags in gate.items():
        run = client.create_run(experiment.experiment_id, tags={"training_set_uri": f"file:///ts/{version}"})
        client.create_model_version(
            MODEL, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id, tags=tags, await_creation_for=0
        )
    client.set_registered_model_alias(MODEL, "champion", "2")
    client.set_registered_model_alias(MODEL, "challenger", "3")
    return client


@pytest.fixture(scope="module")
def drift_history():
    """Three drift checks in the operator's layout: two within the policy, the last one exceeding it."""
    from mlops_provider.settings import get_settings
    from mlops_provider.storage import storage_path, write_bytes_atomic

    root = f"{get_settings().data_root.rstrip('/')}/reports/drift/{MODEL}"
    folder = storage_path(root)
    if folder.exists():
        shutil.rmtree(str(folder.path))
    shares = [(0.1, False, []), (0.2, False, []), (0.7, True, ["share of drifted features 0.70 >= 0.50"])]
    for i, (share, drifted, reasons) in enumerate(shares):
        run_ts = f"2031030{i + 1}T060000000000Z"
        summary = {
            "model_name": MODEL,
            "run_ts": run_ts,
            "checked_at": f"2031-03-0{i + 1}T06:00:00+00:00",
            "window": {"start": f"2031-02-2{i + 6}", "end": f"2031-03-0{i + 1}"},
            "champion_version": "2",
            "drift_detected": drifted,
            "reasons": reasons,
            "policy": {"drift_share": 0.5},
            "drift_share": share,
            "drifted_features": ["amount", "hour"][: int(share * 3)],
            "mlflow_run_id": f"run{i}",
            "mlflow_run_url": f"http://127.0.0.1:5000/#/experiments/1/runs/run{i}",
        }
        write_bytes_atomic(json.dumps(summary).encode(), f"{root}/{run_ts}/summary.json")
        write_bytes_atomic(
            f"<html><body><h1>Evidently report {run_ts}</h1></body></html>".encode(), f"{root}/{run_ts}/report.html"
        )
    return root


@pytest.fixture(scope="module")
def api_server(mlflow_server, tmp_path_factory):
    """``airflow api-server`` on a free loopback port, with the plugin and the MLflow connection."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = os.environ.copy()
    env.update(
        {
            "AIRFLOW_CONN_MLFLOW_DEFAULT": mlflow_server.connection_json(),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API__BASE_URL": base,
            "AIRFLOW__API__WORKERS": "1",
        }
    )
    log_path = tmp_path_factory.mktemp("api-server") / "api-server.log"
    airflow = str(Path(sys.executable).with_name("airflow"))
    command = [airflow, "api-server", "--host", "127.0.0.1", "--port", str(port)]
    with serving(command, health_url=f"{base}/api/v2/monitor/health", log=log_path, env=env, timeout=120):
        yield base


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: run `make browser` (apt-get install chromium).")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield instance
        instance.close()


def test_plugin_is_registered_with_the_api_server(api_server):
    with urllib.request.urlopen(f"{api_server}/api/v2/plugins") as response:
        plugins = json.load(response)["plugins"]
    [plugin] = [p for p in plugins if p["name"] == "mlops"]
    assert plugin["fastapi_apps"][0]["url_prefix"] == "/mlops"
    assert plugin["external_views"][0]["href"] == f"{api_server}/mlops/"
    assert plugin["external_views"][0]["url_route"] == "mlops"


def test_mlops_page_renders_models_gate_deployment_and_drift(api_server, registry, drift_history, browser, repo_root):
    from PIL import Image

    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    response = page.goto(f"{api_server}/mlops/?model={MODEL}", wait_until="load")
    assert response.status == 200

    section = page.locator(f"section.model[data-model='{MODEL}']")
    assert section.count() == 1, page.inner_text("body")[:3000]
    assert section.locator("h2").inner_text() == MODEL
    text = section.inner_text()
    assert "champion → v2" in text and "challenger → v3" in text
    assert "Last gate decision (v3)" in text and "roc_auc 0.93 >= champion 0.91" in text
    assert "deployment.status = promoted" in text
    rows = section.locator("tr.version")
    assert rows.count() == 3
    assert rows.nth(0).locator(".alias.challenger").inner_text() == "challenger"
    assert rows.nth(1).locator(".alias.champion").inner_text() == "champion"

    # Escaped, not executed.
    assert XSS in text
    assert page.evaluate("window.__pwned") is None and dialogs == []

    # Drift share over time: one point per check, the last one over the policy, each linking its report.
    circles = section.locator("svg.drift-plot circle")
    assert circles.count() == 3
    assert circles.nth(2).get_attribute("fill") == "#d32f2f"
    hrefs = [a.get_attribute("href") for a in section.locator("svg.drift-plot a").all()]
    assert hrefs[0] == f"{api_server}/mlops/reports/{MODEL}/20310301T060000000000Z/report.html"
    assert "exceeds policy: share of drifted features 0.70 >= 0.50" in section.locator("table.drift").inner_text()
    run_links = [a.get_attribute("href") for a in section.locator("table.drift a").all()]
    assert "http://127.0.0.1:5000/#/experiments/1/runs/run2" in run_links

    out = repo_root / "build" / "test-artifacts"
    out.mkdir(parents=True, exist_ok=True)
    png = out / "mlops_ui.png"
    page.screenshot(path=str(png), full_page=True)
    image = Image.open(io.BytesIO(png.read_bytes())).convert("L")
    assert image.size[0] == 1280 and image.size[1] >= 600
    low, high = image.getextrema()
    assert high - low > 100, "screenshot is blank"

    # The report link (the drift operator's extra link) serves the stored report.
    report = page.goto(hrefs[2])
    assert report.status == 200
    assert "Evidently report 20310303T060000000000Z" in page.inner_text("h1")
    assert page.goto(f"{api_server}/mlops/reports/{MODEL}/..%2F..%2Fetc/report.html").status == 404
    page.close()


def test_mlops_view_is_in_the_airflow_ui_navigation(api_server, browser, repo_root):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{api_server}/plugin/mlops", wait_until="networkidle")
    frame = page.frame_locator("iframe")
    frame.locator("h1").wait_for(timeout=30_000)
    assert "MLOps: models, promotion gate, deployment and drift" in frame.locator("h1").inner_text()
    assert page.get_by_role("button", name="MLOps").or_(page.get_by_role("link", name="MLOps")).count() >= 1
    page.screenshot(path=str(repo_root / "build" / "test-artifacts" / "mlops_ui_in_airflow.png"))
    page.close()


def test_mlops_routes_require_an_authenticated_user():
    """Without all-admins mode, the plugin's routes answer 401 to anonymous requests, like the rest of the API."""
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    client = TestClient(create_app())
    for path in ("/mlops/", "/mlops/api/models", f"/mlops/reports/{MODEL}/20310301T060000000000Z/report.html"):
        response = client.get(path)
        assert response.status_code == 401, path
        assert response.json() == {"detail": "Not authenticated"}


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    import urllib.error

    try:
        with urllib.request.urlopen(url) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_reports_are_served_sandboxed_with_nosniff_over_http(api_server, drift_history):
    """A stored report runs in a CSP sandbox (opaque origin, no network), never with the API origin's rights."""
    status, headers, body = _get(f"{api_server}/mlops/reports/{MODEL}/20310301T060000000000Z/report.html")
    assert status == 200 and b"Evidently report 20310301T060000000000Z" in body
    csp = [part.strip() for part in headers["content-security-policy"].split(";")]
    assert csp[0].startswith("sandbox") and "allow-same-origin" not in csp[0]
    assert "default-src 'none'" in csp and "connect-src 'none'" in csp
    assert headers["x-content-type-options"] == "nosniff"
    status, headers, _ = _get(f"{api_server}/mlops/?model={MODEL}")
    assert status == 200
    assert headers["x-content-type-options"] == "nosniff"
    assert "script-src" not in headers["content-security-policy"]


def test_dot_segments_and_absolute_paths_never_leave_the_reports_folder(api_server, drift_history):
    """``<data_root>/reports/<secret>/report.html`` sits one level above the drift reports: unreachable."""
    from mlops_provider.settings import get_settings
    from mlops_provider.storage import write_bytes_atomic

    secret = f"secret_{uuid.uuid4().hex[:8]}"
    write_bytes_atomic(b"<h1>secret</h1>", f"{get_settings().data_root.rstrip('/')}/reports/{secret}/report.html")
    for path in (
        f"%2e%2e/{secret}/report.html",
        f"%2E%2E/{secret}/report.html",
        f"..%2F{secret}/x/report.html",
        f"%2Fetc/{secret}/report.html",
        f".{MODEL}/20310301T060000000000Z/report.html",
    ):
        status, _, body = _get(f"{api_server}/mlops/reports/{path}")
        assert status == 404, (path, body[:200])
        assert b"secret" not in body
    status, _, _ = _get(f"{api_server}/mlops/?model=..")
    assert status == 400


def test_mlops_routes_need_the_permission_not_just_a_login():
    """A logged-in user the auth manager grants nothing gets 403; a viewer (read access) gets the routes."""
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    client = TestClient(create_app())
    manager = get_auth_manager()
    no_role = manager.generate_jwt(SimpleAuthManagerUser(username="nobody", role=None))
    viewer = manager.generate_jwt(SimpleAuthManagerUser(username="val", role="viewer"))
    missing_report = f"/mlops/reports/{MODEL}/19990101T000000000000Z/report.html"
    for path in ("/mlops/api/models?model=none_such_model", missing_report):
        response = client.get(path, headers={"Authorization": f"Bearer {no_role}"})
        assert response.status_code == 403, (path, response.text)
        assert response.json() == {"detail": "Forbidden"}
    assert client.get(missing_report, headers={"Authorization": f"Bearer {viewer}"}).status_code == 404
