"""The MLOps page of the Airflow UI: a small FastAPI app mounted by the plugin under ``/mlops``.

Routes (all require an Airflow user the auth manager authorises for the custom view ``MLOps`` and for reading
assets: 401 without a login, 403 without the permission):

- ``/mlops/``: per model, versions with ``champion``/``challenger``, the last gate decision and its
  reasons, the deployment state, and the drift share over time (inline SVG) with links to each
  Evidently report and MLflow run; ``?model=<name>`` shows one model.
- ``/mlops/api/models``: the same data as JSON.
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
"""


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
    live: dict[str, list[dict[str, Any]]] | None = None,
) -> str:
    """The whole page as HTML (every value escaped)."""
    body = ["<h1>MLOps: models, promotion gate, deployment and drift</h1>"]
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

    @app.get("/", response_class=HTMLResponse)
    def page(model: str | None = Query(default=None, max_length=200)) -> HTMLResponse:
        if model is not None and not SAFE_NAME.match(model):
            raise HTTPException(status_code=400, detail="model must match [A-Za-z0-9_.-]+")
        models, drift, error = gather(model)
        live = {name: collect_live_performance(get_settings().data_root, name) for name in drift}
        return HTMLResponse(render_page(models, drift, api_base_url(), error, live))

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
