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
def traced_request(registry, tmp_path_factory):
    """A request v2 served, as the model server logs it, with v2's training set, validation reports and decisions.

    The prediction log row is written by the model server's own ``PredictionLogger``; the training-set manifest
    beside the snapshot the run's lineage tag names (with ``partition_versions``); the audit entries by
    ``record_audit`` as the gate and deploy tasks call it.
    """
    from types import SimpleNamespace

    import numpy as np

    from mlops_provider.audit import GATE_DECISION, PROMOTION, record_audit
    from mlops_provider.lineage import TRAINING_SET_URI_TAG
    from mlops_provider.settings import get_settings
    from mlops_provider.storage import write_bytes_atomic

    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "kserve"))
    from mlops_serving.prediction_log import PredictionLogger

    data_root = get_settings().data_root.rstrip("/")
    snapshot = tmp_path_factory.mktemp("training-set")
    manifest = {"hash": "a1b2c3d4e5f60718", "rows": 1234, "dataset": f"{MODEL}_data", "start": "2031-02-26",
                "end": "2031-02-27", "feature_service": f"{MODEL}_v1",
                "partition_versions": {f"validated/{MODEL}_data/dt=2031-02-26": "feed01feed01feed",
                                       f"validated/{MODEL}_data/dt=2031-02-27": "feed02feed02feed"}}  # fmt: skip
    (snapshot / "manifest.json").write_text(json.dumps(manifest))
    run_id = registry.get_model_version(MODEL, "2").run_id
    registry.set_tag(run_id, TRAINING_SET_URI_TAG, snapshot.as_uri())
    for day, published in (("2031-02-26", True), ("2031-02-27", False)):
        report = {"published": published, "input_rows": 700, "valid_rows": 690 if published else 0, "day": day}
        write_bytes_atomic(
            json.dumps(report).encode(), f"{data_root}/reports/validation/{MODEL}_data/dt={day}/report.json"
        )
    request_id = f"req-{uuid.uuid4().hex}"
    logger = PredictionLogger(f"{data_root}/predictions/{MODEL}", ["f_a", "f_b"], "2", flush_seconds=3600)
    logger.log(np.array([[1.5, 2.5]]), np.array([0.42]), request_id=request_id, latency_ms=3.2)
    logger.close()

    def context(task_id: str) -> dict:
        ti = SimpleNamespace(dag_id="train", run_id="manual__2031-03-01", task_id=task_id, map_index=-1, try_number=1)
        return {"ti": ti, "dag_run": SimpleNamespace(run_type="manual", triggering_user_name="alice")}

    record_audit(GATE_DECISION, MODEL, outcome="promote", reason=f"roc_auc 0.91 >= champion 0.88 {XSS}", subject="2",
                 context=context("gate"), links={"mlflow_model_version": f"http://mlflow.test/#/models/{MODEL}/versions/2"})  # fmt: skip
    record_audit(PROMOTION, MODEL, outcome="promoted", reason="passed the canary analysis", subject="2",
                 context=context("deploy"))  # fmt: skip
    return request_id


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
        # The plugin builds its app on the first request (imports, MLflow client): do it once here, with time to
        # spare on a busy machine, so the browser's page loads measure the page, not the lazy build.
        with urllib.request.urlopen(f"{base}/mlops/api/models?model=warm_up", timeout=300) as response:
            assert response.status == 200
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
    rows = section.locator("tr.version")
    assert rows.count() == 3
    assert rows.nth(0).locator(".alias.challenger").inner_text() == "challenger"
    assert rows.nth(1).locator(".alias.champion").inner_text() == "champion"
    # The served version says so (not "none"); its raw tags are one click away.
    assert rows.nth(1).locator("td.deployment").inner_text().startswith("serving")
    assert "deployment.status = promoted" in rows.nth(1).locator("details.tags").text_content()

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


def test_trace_walk_and_audit_timeline_on_the_page(api_server, traced_request, browser, repo_root):
    """A real request id walks to v2, its run, training-set hash, partition versions and validation reports."""
    from urllib.parse import quote

    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    page.goto(f"{api_server}/mlops/?model={MODEL}&request_id={quote(traced_request)}", wait_until="load")
    trace = page.locator(f"section.trace[data-request-id='{traced_request}']")
    assert trace.count() == 1, page.inner_text("body")[:3000]
    assert f"{MODEL}, served" in trace.locator(".trace-request").inner_text()
    assert "f_a=1.5" in trace.locator(".trace-request").inner_text()
    version = trace.locator(".trace-version")
    assert "v2" in version.inner_text() and "champion" in version.inner_text()
    assert version.locator("a").get_attribute("href").endswith(f"#/models/{MODEL}/versions/2")
    assert "/runs/" in trace.locator(".trace-run a").get_attribute("href")
    assert "a1b2c3d4e5f60718" in trace.locator(".trace-training-set").inner_text()
    partitions = trace.locator(".trace-partitions").inner_text()
    assert "feed02feed02feed" in partitions and "deleted by retention: not reproducible" in partitions
    rows = trace.locator("table.trace-reports tbody tr")
    assert rows.count() == 2 and "not published" in rows.nth(1).inner_text()
    report_href = rows.nth(0).locator("a").get_attribute("href")

    # The audit timeline: newest first, kind badges, the reason escaped, links kept.
    entries = page.locator(f"section.model[data-model='{MODEL}'] li.audit-entry")
    assert [entries.nth(i).get_attribute("data-kind") for i in range(entries.count())] == ["promotion", "gate_decision"]
    gate = entries.nth(1)
    assert gate.locator(".badge").inner_text() == "gate_decision" and XSS in gate.inner_text()
    assert "by train/manual__2031-03-01/gate (triggered by alice)" in gate.inner_text()
    gate_links = [a.get_attribute("href") for a in gate.locator("a").all()]
    assert f"http://mlflow.test/#/models/{MODEL}/versions/2" in gate_links
    assert any(h.endswith("/dags/train/runs/manual__2031-03-01/tasks/gate") for h in gate_links)
    assert page.evaluate("window.__pwned") is None
    out = repo_root / "build" / "test-artifacts"
    out.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out / "mlops_trace_and_audit.png"), full_page=True)

    # A request id is user input: escaped, never executed; an unknown one says where it looked.
    page.goto(f"{api_server}/mlops/?request_id={quote(XSS)}", wait_until="load")
    assert "is in no prediction log" in page.locator("section.trace").inner_text()
    assert page.evaluate("window.__pwned") is None
    assert json.loads(page.goto(report_href).text())["valid_rows"] == 690
    page.close()

    status, headers, body = _get(f"{api_server}/mlops/audit/{MODEL}.jsonl")
    assert status == 200 and headers["content-type"].startswith("application/x-ndjson")
    assert [json.loads(line)["kind"] for line in body.decode().splitlines()] == ["gate_decision", "promotion"]
    status, _, body = _get(f"{api_server}/mlops/trace/{quote(traced_request)}")
    assert status == 200 and json.loads(body)["model_version"]["version"] == "2"
    assert _get(f"{api_server}/mlops/trace/no-such-request")[0] == 404
    assert _get(f"{api_server}/mlops/validation/..%2Fx/2031-02-26/report.json")[0] == 404


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
    for path in (
        "/mlops/",
        "/mlops/api/models",
        f"/mlops/reports/{MODEL}/20310301T060000000000Z/report.html",
        f"/mlops/audit/{MODEL}.jsonl",
        "/mlops/trace/some-request",
        "/mlops/validation/d/2031-02-26/report.json",
    ):
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


@pytest.fixture(scope="module")
def rollout_records(registry):
    """v3's canary rollout (two analysis steps, a shadow comparison, the live weight) and v4 awaiting approval,
    written through ``RolloutRecorder`` as the deploy and approval tasks write them; live performance of v2 and v3."""
    from mlops_provider.serving.records import ANALYSIS, APPROVAL, PHASE, SHADOW, RolloutRecorder
    from mlops_provider.settings import get_settings
    from mlops_provider.storage import write_bytes_atomic

    data_root = get_settings().data_root.rstrip("/")
    rollout = RolloutRecorder(MODEL, "3", "2031-03-04T08:00:00+00:00")
    rollout.record(PHASE, "canary-10", {"phase": "canary", "weight": 10, "message": "10% of traffic to v3"})
    rollout.record(SHADOW, "0", {"requests": 500, "agreement": 0.97, "divergence": 0.03, "latency_ratio": 1.2,
                                 "verdict": "pass", "message": f"shadow agrees {XSS}"})  # fmt: skip
    for step, weight, verdict, errors in ((1, 10, "pass", 0.004), (2, 25, "pass", 0.006)):
        rollout.record(ANALYSIS, step, {
            "step": step, "weight": weight, "source": "prometheus", "window_seconds": 120.0, "verdict": verdict,
            "metrics": [{"name": "error_rate", "value": errors, "threshold": 0.05, "passed": True, "stable": 0.005,
                         "canary": errors},
                        {"name": "p95_latency_ms", "value": 41.0, "threshold": 250.0, "passed": True, "stable": 38.0,
                         "canary": 41.0}],
            "message": f"step {step} within thresholds"})  # fmt: skip
    rollout.record(PHASE, "canary-25", {"phase": "canary", "weight": 25, "message": "25% of traffic to v3"})
    form = "http://127.0.0.1:1/dags/train/runs/manual__2031-03-05/tasks/approve_rollout/required_actions?map_index=-1"
    pending = RolloutRecorder(MODEL, "4", "2031-03-05T09:00:00+00:00")
    pending.record(APPROVAL, "decision", {"state": "pending", "url": form, "by": None, "comment": None})
    for day, values in (
        ("2031-03-01", {"2": 0.90}),
        ("2031-03-02", {"2": 0.88, "3": 0.92}),
        ("2031-03-03", {"2": 0.87, "3": 0.93}),
    ):
        versions = [{"day": day, "model_version": v, "metric": "roc_auc", "value": x, "labeled_rows": 300,
                     "unlabeled_rows": 10} for v, x in values.items()]  # fmt: skip
        body = json.dumps({"day": day, "labels_through": "2031-03-04", "versions": versions}).encode()
        write_bytes_atomic(body, f"{data_root}/live_performance/{MODEL}/dt={day}/metrics.json")
    return {"form": form}


def _page_metrics(page) -> dict:
    return page.evaluate(
        """() => ({scrollWidth: document.documentElement.scrollWidth, clientWidth: document.documentElement.clientWidth,
                  background: getComputedStyle(document.body).backgroundColor,
                  card: getComputedStyle(document.querySelector('section.model')).backgroundColor})"""
    )


def test_model_card_shows_rollout_timeline_pending_approval_and_charts_in_both_themes(
    api_server, registry, drift_history, rollout_records, browser, repo_root
):
    """The card as a release engineer reads it, in Chromium at 1280 px: badges, the pending approval linking to
    Airflow's form, the live canary weight, each analysis step's metrics and verdict, the shadow comparison, the
    charts; no horizontal overflow; the light and the dark theme."""
    from PIL import Image

    out = repo_root / "build" / "test-artifacts"
    out.mkdir(parents=True, exist_ok=True)
    shots = {}
    for scheme in ("light", "dark"):
        context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme=scheme)
        page = context.new_page()
        assert page.goto(f"{api_server}/mlops/?model={MODEL}", wait_until="load").status == 200
        card = page.locator(f"section.model.card[data-model='{MODEL}']")
        badges = card.locator(".card-head .badges").inner_text()
        assert "champion v2" in badges and "challenger v3" in badges, badges
        assert "approval pending" in badges and "drift 0.70 > policy" in badges, badges
        callout = card.locator(".callout.pending-approval[data-version='4']")
        assert callout.locator("a").get_attribute("href") == rollout_records["form"]
        # v3's canary is live (v4 only waits for a person): its weight, each step's metrics and verdict, the shadow.
        assert "rollout v3: canary 25%" in badges, badges
        rollout = card.locator(".panel.rollout")
        assert rollout.get_attribute("data-state") == "canary"
        assert "Canary weight 25%" in rollout.locator(".live-weight").inner_text()
        steps = rollout.locator("svg.canary-plot rect.step")
        assert [steps.nth(i).get_attribute("data-verdict") for i in range(steps.count())] == ["pass", "pass"]
        analysed = rollout.locator("li.event[data-kind='analysis']")
        assert analysed.count() == 2
        assert "Analysis step 2 at 25%" in analysed.nth(1).inner_text()
        assert "error_rate" in analysed.nth(1).locator("table.analysis").inner_text()
        assert "0.006" in analysed.nth(1).locator("table.analysis").inner_text()
        shadow = rollout.locator("li.event[data-kind='shadow']").inner_text()
        assert "Shadow comparison on 500 requests: agreement 0.970" in shadow and XSS in shadow
        assert "Other rollouts" in rollout.inner_text()
        assert card.locator("svg.live-plot circle").count() == 5
        metrics = _page_metrics(page)
        assert metrics["scrollWidth"] <= metrics["clientWidth"] == 1280, metrics
        png = out / f"mlops_card_{scheme}.png"
        page.screenshot(path=str(png), full_page=True)
        shots[scheme] = (Image.open(png).convert("RGB"), metrics)
        assert page.evaluate("window.__pwned") is None
        context.close()

    light, dark = shots["light"], shots["dark"]
    assert light[1]["background"] == "rgb(255, 255, 255)" and dark[1]["background"] == "rgb(15, 17, 23)"
    for image, _ in (light, dark):
        assert image.size[0] == 1280 and image.size[1] > 900
        colors = image.getcolors(maxcolors=1 << 20)
        assert colors is not None and len(colors) > 50, "screenshot is flat"
    # The dark theme is dark: most pixels are near the background colour.
    assert sum(light[0].convert("L").getdata()) / (light[0].size[0] * light[0].size[1]) > 200
    assert sum(dark[0].convert("L").getdata()) / (dark[0].size[0] * dark[0].size[1]) < 80

    status, _, body = _get(f"{api_server}/mlops/api/models?model={MODEL}")
    assert status == 200
    by_version = {r["version"]: r for r in json.loads(body)["rollouts"][MODEL]}
    assert (
        by_version["4"]["state"] == "awaiting approval"
        and by_version["4"]["approval"]["url"] == rollout_records["form"]
    )
    v3 = by_version["3"]
    assert (v3["state"], v3["weight"], [s["verdict"] for s in v3["analysis"]]) == ("canary", 25, ["pass", "pass"])
    assert v3["shadow"][0]["agreement"] == 0.97
