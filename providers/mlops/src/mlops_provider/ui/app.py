"""The MLOps page of the Airflow UI: a small FastAPI app mounted by the plugin under ``/mlops``.

Routes (all require an Airflow user the auth manager authorises for the custom view ``MLOps`` and for reading
assets: 401 without a login, 403 without the permission):

- ``/mlops/``: per model, versions with ``champion``/``challenger``, the last gate decision and its
  reasons, the deployment state, and the drift share over time (inline SVG) with links to each
  Evidently report and MLflow run; ``?model=<name>`` shows one model.
- ``/mlops/api/models``: the same data as JSON.
- ``/mlops/?request_id=<id>`` (a form on the page) and ``/mlops/trace/<id>`` (JSON): a served request walked
  back to its model version, MLflow run, training-set hash, partition versions and validation reports
  (:mod:`mlops_provider.trace`); ``/mlops/validation/<dataset>/<day>/report.json`` serves those reports.
- ``/mlops/audit/<model>.jsonl``: the model's audit log (:mod:`mlops_provider.audit`) as JSON lines; the page
  shows its newest entries per model.
- ``/mlops/reports/<model>/<run_ts>/report.html`` (and ``summary.json``): a drift check's files from
  the data store (the drift operator's extra link points here).

Everything rendered is escaped; links are built from ``[api] base_url`` so they work behind a prefix.
Stored reports are served in a CSP sandbox (an opaque origin: their inline scripts run but can neither read
the API server's cookies nor call it), every response carries ``X-Content-Type-Options: nosniff``, and names
in report paths are checked and kept under the reports folder (:func:`~mlops_provider.ui.data.report_file_uri`).
"""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

if TYPE_CHECKING:
    from fastapi import FastAPI

PREFIX = "/mlops"
REPORT_FILES = {"report.html": "text/html; charset=utf-8", "summary.json": "application/json"}
#: Newest audit entries shown per model (the JSON lines export has them all).
MAX_AUDIT_ENTRIES = 20
#: The custom view the auth manager authorises (``is_authorized_custom_view``).
VIEW_NAME = "MLOps"
#: Stored reports (Evidently inlines its scripts, styles and fonts): sandboxed without ``allow-same-origin``,
#: so they run in an opaque origin, and nothing may be fetched or sent anywhere.
REPORT_CSP = (
    "sandbox allow-scripts allow-popups; default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; "
    "style-src 'unsafe-inline'; img-src data: blob:; font-src data:; connect-src 'none'; form-action 'none'; "
    "base-uri 'none'"
)
#: The page itself: no scripts at all; framed only by the Airflow UI (same origin).
PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'; base-uri 'none'"


def _href(url: str | None) -> str | None:
    """Only http(s) and same-site paths become links (no ``javascript:`` and the like)."""
    if not url:
        return None
    scheme = urlsplit(url).scheme
    if scheme in ("http", "https") or (not scheme and url.startswith("/")):
        return url
    return None


def _link(url: str | None, text: str) -> str:
    href = _href(url)
    if href is None:
        return escape(text)
    return f'<a href="{escape(href, quote=True)}" target="_blank" rel="noopener">{escape(text)}</a>'


def _ts(millis: Any) -> str:
    try:
        return dt.datetime.fromtimestamp(int(millis) / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    except (TypeError, ValueError):
        return ""


def _tags(tags: dict[str, Any]) -> str:
    if not tags:
        return '<span class="muted">none</span>'
    return "".join(f"<div><code>{escape(str(k))}</code> = {escape(str(v))}</div>" for k, v in tags.items())


def drift_svg(points: list[dict[str, Any]], report_base: str, width: int = 720, height: int = 220) -> str:
    """An inline SVG line chart of drift share per check; each point links to its report."""
    if not points:
        return '<p class="muted">No drift checks yet.</p>'
    left, right, top, bottom = 44, 16, 12, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    n = len(points)

    def x(i: int) -> float:
        return left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y(share: float) -> float:
        return top + plot_h * (1 - max(0.0, min(1.0, share)))

    parts = [
        f'<svg class="drift-plot" role="img" aria-label="Drift share over time" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#ccc"/>',
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(
            f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" font-size="11">{tick:.2f}</text>'
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#eee"/>'
        )
    policy = points[-1]["policy_share"]
    parts.append(
        f'<line x1="{left}" x2="{left + plot_w}" y1="{y(policy):.1f}" y2="{y(policy):.1f}" stroke="#d32f2f" '
        f'stroke-dasharray="5,4"><title>policy: drift share {policy:.2f}</title></line>'
    )
    path = " ".join(f"{'M' if i == 0 else 'L'}{x(i):.1f},{y(p['drift_share']):.1f}" for i, p in enumerate(points))
    parts.append(f'<path d="{path}" fill="none" stroke="#1976d2" stroke-width="2"/>')
    for i, point in enumerate(points):
        color = "#d32f2f" if point["drift_detected"] else "#2e7d32"
        report = f"{report_base}/{quote(point['run_ts'])}/report.html"
        label = (
            f"{point.get('checked_at') or point['run_ts']}: drift share {point['drift_share']:.2f}"
            f"{' (exceeds policy)' if point['drift_detected'] else ''}"
        )
        parts.append(
            f'<a href="{escape(report, quote=True)}" target="_blank"><circle cx="{x(i):.1f}" '
            f'cy="{y(point["drift_share"]):.1f}" r="5" fill="{color}"><title>{escape(label)}</title></circle></a>'
        )
    first, last = points[0], points[-1]
    parts.append(
        f'<text x="{left}" y="{height - 10}" font-size="11">{escape(str(first.get("checked_at") or "")[:16])}</text>'
        f'<text x="{left + plot_w}" y="{height - 10}" font-size="11" text-anchor="end">'
        f"{escape(str(last.get('checked_at') or '')[:16])}</text></svg>"
    )
    return "".join(parts)


STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:16px;color:#222}
h1{font-size:22px;margin:0 0 12px} h2{font-size:18px;margin:24px 0 8px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;width:100%;font-size:13px;margin-bottom:12px}
th,td{border:1px solid #e0e0e0;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f5f5f5} .alias{display:inline-block;padding:1px 6px;border-radius:8px;font-size:12px;margin-right:4px}
.champion{background:#c8e6c9} .challenger{background:#fff9c4} .other{background:#e0e0e0}
.muted{color:#888} .drifted{color:#d32f2f;font-weight:600} .ok{color:#2e7d32} code{font-size:12px}
.error{background:#ffebee;padding:8px;border:1px solid #ef9a9a}
.badge{display:inline-block;padding:1px 6px;border-radius:8px;font-size:12px;background:#e3f2fd;margin-right:4px}
.audit li,.trace-walk>li{margin:4px 0} .trace-walk>li>strong{display:inline-block;min-width:150px}
form.trace-form input{width:360px}
"""


def _value(value: Any) -> str:
    """One recorded value as text: scalars as they are, anything else as compact JSON."""
    import json

    return value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)


def _links(links: dict[str, Any]) -> str:
    return " ".join(_link(url, name.replace("_", " ")) for name, url in links.items() if _href(url))


def render_audit(model: str, entries: list[dict[str, Any]], base: str) -> str:
    """A model's audit timeline, newest first: time, kind, outcome, actor, reason and links."""
    export = f"{base}{PREFIX}/audit/{quote(model)}.jsonl"
    parts = [f"<h3>Audit log</h3><p>{_link(export, 'Export as JSON lines')}</p>"]
    if not entries:
        return "".join(parts) + '<p class="audit muted">No decisions recorded yet.</p>'
    parts.append('<ol class="audit">')
    for entry in entries:
        actor = entry.get("actor") or {}
        user = f" (triggered by {actor['triggered_by_user']})" if actor.get("triggered_by_user") else ""
        parts.append(
            f'<li class="audit-entry" data-kind="{escape(str(entry.get("kind")), quote=True)}">'
            f"{escape(str(entry.get('at', ''))[:19].replace('T', ' '))} UTC "
            f'<span class="badge">{escape(str(entry.get("kind")))}</span><strong>{escape(str(entry.get("outcome")))}'
            f"</strong>{' v' + escape(str(entry['subject'])) if entry.get('subject') else ''}: "
            f"{escape(str(entry.get('reason', '')))} <span class='muted'>by {escape(str(actor.get('name')))}"
            f"{escape(user)}</span> {_links(entry.get('links') or {})}</li>"
        )
    return "".join(parts) + "</ol>"


def _validation_link(uri: str, dataset: str, day: str, base: str) -> str | None:
    """Where a browser opens a validation report: this page for local files, the cloud console otherwise."""
    from mlops_provider.links.validation import browsable_url

    if uri.startswith(("s3://", "gs://", "gcs://")):
        return browsable_url(uri)
    return f"{base}{PREFIX}/validation/{quote(dataset)}/{quote(day)}/report.json"


def render_trace(request_id: str, lineage: dict[str, Any] | None, error: str | None, base: str) -> str:
    """The trace walk of one request: request -> version -> run -> training set -> partitions -> validation."""
    head = f'<section class="trace" data-request-id="{escape(request_id, quote=True)}"><h2>Trace of request {escape(request_id)}</h2>'
    if lineage is None:
        return f'{head}<div class="error">{escape(error or "not traced")}</div></section>'
    request, version, run = lineage["request"], lineage["model_version"], lineage["run"]
    training_set, reports = lineage["training_set"], lineage["validation_reports"]
    features = ", ".join(f"{escape(str(k))}={escape(_value(v))}" for k, v in request["features"].items())
    airflow = ", ".join(f"{escape(k)}={escape(str(v))}" for k, v in sorted(run["airflow"].items()))
    params = ", ".join(f"{escape(k)}={escape(str(v))}" for k, v in sorted(run["params"].items()))
    partitions = training_set.get("partition_versions")
    if partitions:
        partition_html = "".join(
            f"<div><code>{escape(str(p['partition']))}</code> = <code>{escape(str(p['version']))}</code> "
            f"<span class='muted'>{'current' if p['current'] else 'superseded'}"
            f"{'' if p['exists'] else ', deleted by retention: not reproducible'}</span></div>"
            for p in partitions
        )
    else:
        partition_html = '<span class="muted">not recorded in the training-set manifest</span>'
    rows = []
    for report in reports:
        href = _validation_link(report["uri"], str(training_set["dataset"]), report["day"], base)
        published = report["published"]
        state = "no report" if published is None else ("published" if published else "not published")
        rows.append(
            f"<tr><td>{escape(report['day'])}</td><td>{escape(state)}</td><td>{escape(str(report['input_rows']))}"
            f"</td><td>{escape(str(report['valid_rows']))}</td><td>{_link(href, 'report')}</td></tr>"
        )
    report_html = (
        "<table class='trace-reports'><thead><tr><th>Day</th><th>Validation</th><th>Input rows</th><th>Valid rows</th>"
        f"<th>Report</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        if rows
        else '<span class="muted">no validation window recorded</span>'
    )
    window = " … ".join(escape(str(w)) for w in training_set["window"])
    version_link = (
        _link(version.get("url"), f"v{version['version']}") if version.get("url") else f"v{escape(version['version'])}"
    )
    run_link = _link(run.get("url"), version["run_id"]) if run.get("url") else escape(str(version["run_id"]))
    return (
        f'{head}<ol class="trace-walk">'
        f"<li class='trace-request'><strong>Request</strong>{escape(request['model_name'])}, served "
        f"{escape(request['served_at'])}, {request['rows']} row(s), {escape(str(request['latency_ms']))} ms, "
        f"predictions {escape(_value(request['predictions']))}<div class='muted'>{features}</div></li>"
        f"<li class='trace-version'><strong>Model version</strong>{version_link} "
        f"{escape(', '.join(version['aliases']))}</li>"
        f"<li class='trace-run'><strong>MLflow run</strong>{run_link}, code {escape(str(run['code_version'] or 'not recorded'))}"
        f"<div class='muted'>{airflow}</div><div class='muted'>{params}</div></li>"
        f"<li class='trace-training-set'><strong>Training set</strong>hash <code>{escape(str(training_set['hash']))}"
        f"</code>, {escape(str(training_set['rows']))} rows of {escape(str(training_set['dataset']))}, {window}, "
        f"feature service {escape(str(training_set['feature_service']))}<div class='muted'>"
        f"{escape(str(training_set['uri']))}</div></li>"
        f"<li class='trace-partitions'><strong>Partition versions</strong>{partition_html}</li>"
        f"<li class='trace-validation'><strong>Validation reports</strong>{report_html}</li></ol></section>"
    )


def live_performance_html(rows: list[dict[str, Any]], days: int = 14) -> str:
    """A compact table of live performance (delayed labels) per prediction day and version, newest day first."""
    if not rows:
        return ""
    shown = sorted({r["day"] for r in rows})[-days:]
    body = [
        "<h3>Live performance (delayed labels)</h3><table class='live'><thead><tr><th>Prediction day</th>"
        "<th>Version</th><th>Metric</th><th>Labeled</th><th>Unlabeled</th><th>Labels through</th></tr></thead><tbody>"
    ]
    for row in sorted((r for r in rows if r["day"] in shown), key=lambda r: r["day"], reverse=True):
        value = row.get("value")
        shown_value = f"{float(value):.3f}" if value is not None else "n/a"
        body.append(
            f"<tr><td>{escape(str(row['day']))}</td><td>v{escape(str(row.get('model_version')))}</td>"
            f"<td>{escape(str(row.get('metric')))} {shown_value}</td><td>{int(row.get('labeled_rows') or 0)}</td>"
            f"<td>{int(row.get('unlabeled_rows') or 0)}</td><td>{escape(str(row.get('labels_through') or ''))}</td></tr>"
        )
    body.append("</tbody></table>")
    return "".join(body)


def render_page(
    models: list[dict[str, Any]],
    drift: dict[str, list[dict[str, Any]]],
    base: str,
    error: str | None,
    *,
    audit: dict[str, list[dict[str, Any]]] | None = None,
    trace: str | None = None,
    live: dict[str, list[dict[str, Any]]] | None = None,
) -> str:
    """The whole page as HTML (every value escaped); ``trace`` is a rendered :func:`render_trace`."""
    body = ["<h1>MLOps: models, promotion gate, deployment and drift</h1>"]
    body.append(
        f'<form class="trace-form" method="get" action="{escape(base + PREFIX, quote=True)}/"><label>Trace a request: '
        '<input name="request_id" maxlength="200" placeholder="request id (the response\'s request_id / id)">'
        "</label> <button type='submit'>Trace</button></form>"
    )
    if trace:
        body.append(trace)
    if error:
        body.append(f'<div class="error">{escape(error)}</div>')
    if not models and not error:
        body.append('<p class="muted">No registered models yet.</p>')
    for model in models:
        name = model["name"]
        body.append(f'<section class="model" data-model="{escape(name, quote=True)}"><h2>{escape(name)}</h2>')
        aliases = ", ".join(f"{escape(a)} → v{escape(str(v))}" for a, v in model["aliases"].items()) or "none"
        body.append(f"<p>Aliases: {aliases}</p>")
        gate = model["last_gate"]
        if gate:
            body.append(
                f'<div class="gate"><strong>Last gate decision (v{escape(gate["version"])})</strong>{_tags(gate["tags"])}</div>'
            )
        else:
            body.append('<p class="gate muted">No gate decision recorded yet.</p>')
        body.append(
            "<table><thead><tr><th>Version</th><th>Aliases</th><th>Created</th><th>Gate</th><th>Deployment</th>"
            "<th>Tags</th><th>MLflow</th></tr></thead><tbody>"
        )
        for row in model["versions"]:
            alias_html = "".join(
                f'<span class="alias {escape(a if a in ("champion", "challenger") else "other")}">{escape(a)}</span>'
                for a in row["aliases"]
            )
            mlflow_links = " ".join(
                x
                for x in (
                    _link(row["version_url"], "version") if row["version_url"] else "",
                    _link(row["run_url"], "run") if row["run_url"] else "",
                )
                if x
            ) or escape(str(row["run_id"] or ""))
            body.append(
                f'<tr class="version"><td>v{escape(row["version"])}</td><td>{alias_html}</td><td>{escape(_ts(row["created"]))}</td>'
                f"<td>{_tags(row['gate'])}</td><td>{_tags(row['deployment'])}</td><td>{_tags(row['tags'])}</td>"
                f"<td>{mlflow_links}</td></tr>"
            )
        body.append("</tbody></table>")
        points = drift.get(name, [])
        report_base = f"{base}{PREFIX}/reports/{quote(name)}"
        body.append("<h3>Drift share over time</h3>")
        body.append(drift_svg(points, report_base))
        if points:
            body.append(
                "<table class='drift'><thead><tr><th>Checked</th><th>Window</th><th>Champion</th><th>Drift share</th>"
                "<th>Verdict</th><th>Drifted features</th><th>Report</th><th>MLflow run</th></tr></thead><tbody>"
            )
            for point in reversed(points):
                window = point["window"]
                verdict = (
                    f'<span class="drifted">exceeds policy: {escape("; ".join(point["reasons"]))}</span>'
                    if point["drift_detected"]
                    else '<span class="ok">within policy</span>'
                )
                report = f"{report_base}/{quote(point['run_ts'])}/report.html"
                run = (
                    _link(point["mlflow_run_url"], point["mlflow_run_id"] or "run")
                    if point["mlflow_run_url"]
                    else escape(point["mlflow_run_id"] or "")
                )
                body.append(
                    f"<tr><td>{escape(str(point['checked_at'] or point['run_ts']))}</td>"
                    f"<td>{escape(str(window.get('start', '')))} … {escape(str(window.get('end', '')))}</td>"
                    f"<td>v{escape(str(point['champion_version']))}</td><td>{point['drift_share']:.2f}</td>"
                    f"<td>{verdict}</td><td>{escape(', '.join(point['drifted_features']))}</td>"
                    f"<td>{_link(report, 'Evidently report')}</td><td>{run}</td></tr>"
                )
            body.append("</tbody></table>")
        if audit is not None:
            body.append(render_audit(name, audit.get(name, []), base))
        body.append(live_performance_html((live or {}).get(name, [])))
        body.append("</section>")
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>MLOps</title>"
        f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>"
    )


def create_app() -> FastAPI:
    """Build the FastAPI app (called on the first request, so the API server starts without it)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi import Depends, FastAPI, HTTPException, Query, Request
    from fastapi.responses import HTMLResponse, Response

    from mlops_provider.links.evidently import api_base_url
    from mlops_provider.settings import get_settings
    from mlops_provider.ui.data import (
        SAFE_NAME,
        collect_drift,
        collect_live_performance,
        collect_models,
        report_file_uri,
    )

    def requires_mlops_access(user: Any = Depends(get_user)) -> None:  # noqa: B008 (FastAPI's idiom)
        """403 unless the auth manager lets ``user`` read the MLOps view and assets (drift reports are about data)."""
        manager = get_auth_manager()
        if not (
            manager.is_authorized_custom_view(method="GET", resource_name=VIEW_NAME, user=user)
            and manager.is_authorized_asset(method="GET", user=user)
        ):
            raise HTTPException(status_code=403, detail="Forbidden")

    app = FastAPI(title="MLOps", dependencies=[Depends(requires_mlops_access)], docs_url=None, redoc_url=None)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers.setdefault("Content-Security-Policy", PAGE_CSP)
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    def gather(model: str | None) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]], str | None]:
        from mlops_provider.hooks.mlflow import MlflowHook

        settings = get_settings()
        error = None
        try:
            models = collect_models(MlflowHook(), only=model)
        except Exception as err:  # show the page (with drift history) even when MLflow is down
            models, error = [], f"MLflow registry not reachable: {type(err).__name__}: {err}"
        names = [m["name"] for m in models] or [name for name in (model or settings.model_name,) if name]
        drift = {name: collect_drift(settings.data_root, name) for name in names}
        return models, drift, error

    def audit_of(names: list[str]) -> dict[str, list[dict[str, Any]]]:
        from mlops_provider.audit import read_audit

        found = {}
        for name in names:
            try:
                found[name] = read_audit(name, limit=MAX_AUDIT_ENTRIES)
            except Exception as err:  # an unreadable store must not hide the registry
                found[name] = [{"kind": "error", "outcome": "unreadable", "reason": f"{type(err).__name__}: {err}"}]
        return found

    def traced(request_id: str, model: str | None) -> str:
        from mlops_provider.trace import TraceError, trace_request

        try:
            return render_trace(request_id, trace_request(request_id, model), None, api_base_url())
        except TraceError as err:
            return render_trace(request_id, None, str(err), api_base_url())
        except Exception as err:  # MLflow down, a manifest gone: say so on the page
            return render_trace(request_id, None, f"Trace failed: {type(err).__name__}: {err}", api_base_url())

    @app.get("/", response_class=HTMLResponse)
    def page(
        model: str | None = Query(default=None, max_length=200),
        request_id: str | None = Query(default=None, max_length=200),
    ) -> HTMLResponse:
        if model is not None and not SAFE_NAME.match(model):
            raise HTTPException(status_code=400, detail="model must match [A-Za-z0-9_.-]+")
        models, drift, error = gather(model)
        trace = traced(request_id.strip(), model) if request_id and request_id.strip() else None
        audit = audit_of([m["name"] for m in models])
        live = {name: collect_live_performance(get_settings().data_root, name) for name in drift}
        return HTMLResponse(render_page(models, drift, api_base_url(), error, audit=audit, trace=trace, live=live))

    @app.get("/trace/{request_id}")
    def trace_json(request_id: str, model: str | None = Query(default=None, max_length=200)) -> Response:
        import json

        from mlops_provider.trace import TraceError, trace_request

        if len(request_id) > 200 or (model is not None and not SAFE_NAME.match(model)):
            raise HTTPException(status_code=400, detail="request_id is at most 200 characters; model a safe name")
        try:
            lineage = trace_request(request_id, model)
        except TraceError as err:
            raise HTTPException(status_code=404, detail=str(err)) from None
        return Response(json.dumps(lineage, default=str), media_type="application/json")

    @app.get("/audit/{model}.jsonl")
    def audit_export(model: str, since: str | None = Query(default=None, max_length=40)) -> Response:
        from mlops_provider.audit import export_jsonl

        if not SAFE_NAME.match(model):
            raise HTTPException(status_code=400, detail="model must match [A-Za-z0-9_.-]+")
        try:
            lines = "".join(export_jsonl(model, since=since))
        except ValueError:
            raise HTTPException(status_code=400, detail="since must be an ISO date or timestamp") from None
        return Response(
            lines,
            media_type="application/x-ndjson",
            headers={"Content-Disposition": f'attachment; filename="{model}-audit.jsonl"'},
        )

    @app.get("/validation/{dataset}/{day}/report.json")
    def validation_report(dataset: str, day: str) -> Response:
        import datetime as dt

        from mlops_provider.exceptions import InvalidNameError
        from mlops_provider.names import zone_uri
        from mlops_provider.partitions import partition_uri
        from mlops_provider.storage import storage_path
        from mlops_provider.trace import VALIDATION_REPORTS_ZONE

        try:
            uri = partition_uri(
                zone_uri(get_settings().data_root, VALIDATION_REPORTS_ZONE, dataset),
                dt.date.fromisoformat(day),
                "report.json",
            )
        except (ValueError, InvalidNameError):  # not a date, or a name that would leave the reports zone
            raise HTTPException(status_code=404, detail="No such validation report") from None
        path = storage_path(uri)
        if not path.exists():
            raise HTTPException(status_code=404, detail=f"No validation report of {dataset} on {day}")
        return Response(path.read_bytes(), media_type="application/json")

    @app.get("/api/models")
    def models_json(model: str | None = Query(default=None, max_length=200)) -> dict[str, Any]:
        if model is not None and not SAFE_NAME.match(model):
            raise HTTPException(status_code=400, detail="model must match [A-Za-z0-9_.-]+")
        models, drift, error = gather(model)
        live = {name: collect_live_performance(get_settings().data_root, name) for name in drift}
        return {"models": models, "drift": drift, "live_performance": live, "error": error}

    @app.get("/reports/{model}/{run_ts}/{filename}")
    def report_file(model: str, run_ts: str, filename: str) -> Response:
        uri = report_file_uri(get_settings().data_root, model, run_ts, filename)
        if uri is None:
            raise HTTPException(status_code=404, detail="No such report")
        from mlops_provider.storage import storage_path

        path = storage_path(uri)
        if not path.exists():
            raise HTTPException(status_code=404, detail=f"No drift report {model}/{run_ts}")
        return Response(
            content=path.read_bytes(),
            media_type=REPORT_FILES[filename],
            headers={"Content-Security-Policy": REPORT_CSP, "X-Content-Type-Options": "nosniff"},
        )

    return app
