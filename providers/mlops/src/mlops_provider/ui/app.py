"""The MLOps page of the Airflow UI: a small FastAPI app mounted by the plugin under ``/mlops``.

Routes (all require an Airflow user the auth manager authorises for the custom view ``MLOps`` and for reading
assets: 401 without a login, 403 without the permission):

- ``/mlops/``: a card per model: status badges (``champion``/``challenger``, what serves or the live rollout, drift,
  a pending approval, the last cold start of a local model scaled to zero), pending approvals linking to Airflow's required-actions form, the last gate decision with the
  candidate's metric deltas against the champion, the rollout from :mod:`mlops_provider.serving.records` (phase, live
  canary weight, each analysis step's metrics and verdict, shadow comparisons, approvals, result), inline SVG charts
  (canary steps, drift share over time with links to each Evidently report, live performance), the versions and the
  audit timeline; ``?model=<name>`` shows one model. Light and dark themes follow ``prefers-color-scheme``.
- ``/mlops/api/models``: the same data as JSON (``rollouts`` and ``cold_starts`` included).
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
import logging
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger(__name__)

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


def _svg_open(css_class: str, label: str, width: int, height: int) -> str:
    # Scales to its container (no horizontal overflow); the viewBox keeps the drawing's proportions.
    return (
        f'<svg class="chart {css_class}" role="img" aria-label="{escape(label, quote=True)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" preserveAspectRatio="xMinYMin meet" '
        'xmlns="http://www.w3.org/2000/svg">'
    )


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
        _svg_open("drift-plot", "Drift share over time", width, height),
        f'<rect class="plot-area" x="{left}" y="{top}" width="{plot_w}" height="{plot_h}"/>',
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(
            f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:.2f}</text>'
            f'<line class="grid" x1="{left}" x2="{left + plot_w}" y1="{y(tick):.1f}" y2="{y(tick):.1f}"/>'
        )
    policy = points[-1]["policy_share"]
    parts.append(
        f'<line class="threshold" x1="{left}" x2="{left + plot_w}" y1="{y(policy):.1f}" y2="{y(policy):.1f}">'
        f"<title>policy: drift share {policy:.2f}</title></line>"
    )
    path = " ".join(f"{'M' if i == 0 else 'L'}{x(i):.1f},{y(p['drift_share']):.1f}" for i, p in enumerate(points))
    parts.append(f'<path class="series" d="{path}"/>')
    for i, point in enumerate(points):
        color = BAD if point["drift_detected"] else OK
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
        f'<text x="{left}" y="{height - 10}">{escape(str(first.get("checked_at") or "")[:16])}</text>'
        f'<text x="{left + plot_w}" y="{height - 10}" text-anchor="end">'
        f"{escape(str(last.get('checked_at') or '')[:16])}</text></svg>"
    )
    return "".join(parts)


#: Series colours readable on the light and the dark theme.
PALETTE = ("#3182ce", "#dd6b20", "#38a169", "#805ad5", "#d53f8c", "#319795")
OK, BAD, NEUTRAL = "#2f855a", "#d32f2f", "#718096"


def live_svg(rows: list[dict[str, Any]], width: int = 720, height: int = 200) -> str:
    """An inline SVG chart of the live metric (delayed labels) per prediction day, one line per version."""
    points = [r for r in rows if r.get("value") is not None]
    if not points:
        return ""
    days = sorted({str(r["day"]) for r in rows})
    values = [float(r["value"]) for r in points]
    low, high = min(values), max(values)
    pad = (high - low) * 0.1 or 0.05
    low, high = low - pad, high + pad
    left, right, top, bottom = 44, 110, 12, 30
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(day: str) -> float:
        i = days.index(day)
        return left + (plot_w * i / (len(days) - 1) if len(days) > 1 else plot_w / 2)

    def y(value: float) -> float:
        return top + plot_h * (1 - (value - low) / (high - low))

    metric = str(points[-1].get("metric") or "metric")
    parts = [
        _svg_open("live-plot", f"Live {metric} per day and version", width, height),
        f'<rect class="plot-area" x="{left}" y="{top}" width="{plot_w}" height="{plot_h}"/>',
    ]
    for tick in (low, (low + high) / 2, high):
        parts.append(
            f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:.3f}</text>'
            f'<line class="grid" x1="{left}" x2="{left + plot_w}" y1="{y(tick):.1f}" y2="{y(tick):.1f}"/>'
        )
    versions = sorted({str(r.get("model_version")) for r in points}, key=lambda v: (len(v), v))
    for n, version in enumerate(versions):
        color = PALETTE[n % len(PALETTE)]
        series = sorted((r for r in points if str(r.get("model_version")) == version), key=lambda r: str(r["day"]))
        path = " ".join(
            f"{'M' if i == 0 else 'L'}{x(str(r['day'])):.1f},{y(float(r['value'])):.1f}" for i, r in enumerate(series)
        )
        parts.append(f'<path d="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for r in series:
            label = (
                f"v{version} {r['day']}: {metric} {float(r['value']):.3f} on {int(r.get('labeled_rows') or 0)} labels"
            )
            parts.append(
                f'<circle cx="{x(str(r["day"])):.1f}" cy="{y(float(r["value"])):.1f}" r="3.5" fill="{color}">'
                f"<title>{escape(label)}</title></circle>"
            )
        parts.append(
            f'<rect x="{width - right + 12}" y="{top + 16 * n}" width="10" height="10" fill="{color}"/>'
            f'<text x="{width - right + 28}" y="{top + 16 * n + 9}">v{escape(version)}</text>'
        )
    parts.append(
        f'<text x="{left}" y="{height - 8}">{escape(days[0])}</text>'
        f'<text x="{left + plot_w}" y="{height - 8}" text-anchor="end">{escape(days[-1])}</text></svg>'
    )
    return "".join(parts)


VERDICT_COLORS = {"pass": OK, "fail": BAD, "inconclusive": NEUTRAL}


def canary_svg(steps: list[dict[str, Any]], width: int = 560, height: int = 180) -> str:
    """An inline SVG of a rollout's analysis steps: the canary weight of each step, coloured by its verdict."""
    if not steps:
        return ""
    left, right, top, bottom = 40, 12, 12, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    slot = plot_w / len(steps)
    bar = min(48.0, slot * 0.6)
    parts = [
        _svg_open("canary-plot", "Canary analysis steps: traffic weight and verdict", width, height),
        f'<rect class="plot-area" x="{left}" y="{top}" width="{plot_w}" height="{plot_h}"/>',
    ]
    for tick in (0, 50, 100):
        ty = top + plot_h * (1 - tick / 100)
        parts.append(
            f'<text x="{left - 6}" y="{ty + 4:.1f}" text-anchor="end">{tick}%</text>'
            f'<line class="grid" x1="{left}" x2="{left + plot_w}" y1="{ty:.1f}" y2="{ty:.1f}"/>'
        )
    for i, step in enumerate(steps):
        weight = step.get("weight")
        shown = 100.0 if weight is None else max(0.0, min(100.0, float(weight)))
        verdict = str(step.get("verdict") or "inconclusive")
        color = VERDICT_COLORS.get(verdict, NEUTRAL)
        bx = left + slot * i + (slot - bar) / 2
        bh = plot_h * shown / 100
        metrics = "; ".join(
            f"{m.get('name')} {_num(m.get('value'))} (threshold {_num(m.get('threshold'))})"
            for m in step.get("metrics") or []
        )
        label = f"step {step.get('step')}: {'full traffic' if weight is None else f'{weight}%'} {verdict}. {metrics}"
        parts.append(
            f'<rect class="step" data-verdict="{escape(verdict, quote=True)}" x="{bx:.1f}" y="{top + plot_h - bh:.1f}" '
            f'width="{bar:.1f}" height="{bh:.1f}" rx="3" fill="{color}"><title>{escape(label)}</title></rect>'
            f'<text x="{bx + bar / 2:.1f}" y="{height - 10}" text-anchor="middle">{escape(str(step.get("step")))}</text>'
        )
    return "".join(parts) + "</svg>"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _num(value: Any, digits: int = 3) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "n/a"
    return f"{value:.{digits}f}"


STYLE = """
:root{color-scheme:light dark;--bg:#ffffff;--fg:#1a202c;--muted:#718096;--border:#e2e8f0;--panel:#ffffff;
--subtle:#f7fafc;--accent:#0070c0;--ok:#276749;--ok-bg:#c6f6d5;--bad:#c53030;--bad-bg:#fed7d7;--warn:#975a16;
--warn-bg:#fefcbf;--info:#2c5282;--info-bg:#bee3f8;--gray:#4a5568;--gray-bg:#edf2f7;--radius:8px}
@media (prefers-color-scheme:dark){:root{--bg:#0f1117;--fg:#e2e8f0;--muted:#a0aec0;--border:#2d3748;
--panel:#171923;--subtle:#1f2533;--accent:#63b3ed;--ok:#9ae6b4;--ok-bg:#1c4532;--bad:#feb2b2;--bad-bg:#63171b;
--warn:#faf089;--warn-bg:#5f370e;--info:#90cdf4;--info-bg:#1a365d;--gray:#cbd5e0;--gray-bg:#2d3748}}
*{box-sizing:border-box}
body{font-family:Inter,system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;padding:16px 24px;
background:var(--bg);color:var(--fg);font-size:14px;line-height:1.5;overflow-wrap:anywhere}
a{color:var(--accent);text-decoration:none} a:hover{text-decoration:underline}
h1{font-size:20px;font-weight:600;margin:0 0 16px} h2{font-size:18px;font-weight:600;margin:0}
h3{font-size:14px;font-weight:600;margin:0 0 8px}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px;background:var(--subtle);
padding:0 4px;border-radius:4px}
.muted{color:var(--muted)} .drifted{color:var(--bad);font-weight:600} .ok{color:var(--ok)}
.error{background:var(--bad-bg);color:var(--bad);padding:8px 12px;border-radius:var(--radius);margin:8px 0}
form.trace-form{display:flex;flex-wrap:wrap;gap:8px;align-items:center;margin-bottom:16px}
form.trace-form input{width:min(360px,100%);padding:6px 10px;border:1px solid var(--border);border-radius:6px;
background:var(--panel);color:var(--fg)}
button{padding:6px 12px;border-radius:6px;border:1px solid var(--border);background:var(--subtle);color:var(--fg);
cursor:pointer}
.card{background:var(--panel);border:1px solid var(--border);border-radius:var(--radius);padding:16px;
margin:0 0 24px;max-width:100%}
.card-head{display:flex;flex-wrap:wrap;gap:8px 16px;align-items:center;margin-bottom:8px}
.badges{display:flex;flex-wrap:wrap;gap:6px}
.badge,.alias{display:inline-block;padding:0 8px;border-radius:999px;font-size:12px;font-weight:500;
line-height:20px;white-space:nowrap;background:var(--gray-bg);color:var(--gray)}
.tone-ok,.alias.champion{background:var(--ok-bg);color:var(--ok)} .tone-bad{background:var(--bad-bg);color:var(--bad)}
.tone-warn,.alias.challenger{background:var(--warn-bg);color:var(--warn)}
.tone-info{background:var(--info-bg);color:var(--info)}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,460px),1fr));gap:16px;margin-top:16px}
.panel{border:1px solid var(--border);border-radius:var(--radius);padding:12px;min-width:0;background:var(--subtle)}
.panel.wide{margin-top:16px}
.callout{border-left:4px solid var(--warn);background:var(--warn-bg);padding:8px 12px;border-radius:6px;margin:8px 0}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;width:100%;font-size:13px;margin:4px 0 8px}
th,td{border-bottom:1px solid var(--border);padding:4px 8px;text-align:left;vertical-align:top}
th{font-weight:600;color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.02em}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.better{color:var(--ok);font-weight:600} .worse{color:var(--bad);font-weight:600}
.weight{height:8px;border-radius:4px;background:var(--gray-bg);overflow:hidden;margin:4px 0 8px;max-width:320px}
.weight>span{display:block;height:100%;background:var(--accent)}
svg.chart{display:block;width:100%;max-width:720px;height:auto;font-size:11px}
svg.chart text{fill:var(--muted)} svg.chart .plot-area{fill:var(--panel);stroke:var(--border)}
svg.chart .grid{stroke:var(--border)} svg.chart .threshold{stroke:#d32f2f;stroke-dasharray:5 4}
svg.chart .series{fill:none;stroke:var(--accent);stroke-width:2}
ol.timeline{list-style:none;margin:0;padding:0 0 0 12px;border-left:2px solid var(--border)}
ol.timeline>li{margin:0 0 8px;padding-left:8px}
ol.audit{padding-left:20px} .audit li,.trace-walk>li{margin:4px 0}
.trace-walk>li>strong{display:inline-block;min-width:150px}
details>summary{cursor:pointer;color:var(--muted)}
.tags div{font-size:12px}
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
        "<h3>Live performance (delayed labels)</h3><div class='scroll'><table class='live'><thead><tr><th>Prediction day</th>"
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
    body.append("</tbody></table></div>")
    return "".join(body)


def _badge(text: str, tone: str = "", title: str | None = None) -> str:
    tip = f' title="{escape(title, quote=True)}"' if title else ""
    return f'<span class="badge{" tone-" + tone if tone else ""}"{tip}>{escape(text)}</span>'


#: Rollout states as badge tones.
STATE_TONES = {
    "promoted": "ok",
    "rolled_back": "bad",
    "failed": "bad",
    "rejected": "bad",
    "awaiting approval": "warn",
}


def _metric_better(metric: str, delta: float) -> bool:
    from mlops_provider.training.evaluation import METRIC_DIRECTIONS

    return delta >= 0 if METRIC_DIRECTIONS.get(metric, "max") == "max" else delta <= 0


def metric_deltas_html(candidate: dict[str, Any], champion: dict[str, Any] | None) -> str:
    """Candidate vs champion metrics with the difference, green when better and red when worse (by direction)."""
    metrics = sorted(set(candidate) | set(champion or {}))
    if not metrics:
        return '<p class="muted">No metrics recorded.</p>'
    rows = []
    for metric in metrics:
        cand, champ = candidate.get(metric), (champion or {}).get(metric)
        delta_html = ""
        if isinstance(cand, int | float) and isinstance(champ, int | float) and _is_number(cand) and _is_number(champ):
            delta = float(cand) - float(champ)
            tone = "better" if _metric_better(metric, delta) else "worse"
            delta_html = f'<span class="{tone}">{delta:+.4f}</span>'
        rows.append(
            f'<tr class="metric" data-metric="{escape(metric, quote=True)}"><td>{escape(metric)}</td>'
            f'<td class="num">{_num(cand, 4)}</td><td class="num">{_num(champ, 4)}</td>'
            f'<td class="num delta">{delta_html}</td></tr>'
        )
    return (
        '<div class="scroll"><table class="deltas"><thead><tr><th>Metric</th><th class="num">Candidate</th>'
        f'<th class="num">Champion</th><th class="num">Δ</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
    )


def _gate_panel(model: dict[str, Any], gate_entry: dict[str, Any] | None) -> str:
    """The latest gate decision: verdict, reasons and the metric deltas against the champion."""
    gate = model.get("last_gate")
    if gate_entry is not None:
        details = gate_entry.get("details") or {}
        version = str(gate_entry.get("subject") or details.get("candidate_version") or "?")
        decision = str(gate_entry.get("outcome"))
        reasons = [r for r in str(gate_entry.get("reason") or "").split("; ") if r]
        candidate_metrics = details.get("candidate_metrics") or {}
        champion_metrics = details.get("champion_metrics")
        against = details.get("champion_version")
        links = _links(gate_entry.get("links") or {})
    elif gate:
        version, tags = gate["version"], gate["tags"]
        decision = next((str(v) for k, v in tags.items() if k.endswith("decision")), "recorded")
        reasons = [r for v in (v for k, v in tags.items() if k.endswith("reasons")) for r in str(v).split("; ") if r]
        by_version = {row["version"]: row for row in model["versions"]}
        champion = model["aliases"].get("champion")
        candidate_metrics = (by_version.get(version) or {}).get("metrics") or {}
        champion_metrics = (by_version.get(str(champion)) or {}).get("metrics") if champion else None
        against = champion
        links = ""
    else:
        return '<div class="panel gate"><h3>Gate</h3><p class="gate muted">No gate decision recorded yet.</p></div>'
    tone = "ok" if decision == "promote" else "bad"
    reasons_html = "".join(f"<li>{escape(r)}</li>" for r in reasons)
    return (
        f'<div class="panel gate"><h3>Last gate decision (v{escape(version)})</h3>'
        f"<p>{_badge(decision, tone)} against {'v' + escape(str(against)) if against else 'no champion'} {links}</p>"
        f"<ul class='reasons'>{reasons_html}</ul>"
        f"{metric_deltas_html(candidate_metrics, champion_metrics)}</div>"
    )


def _approval_html(approval: dict[str, Any] | None) -> str:
    if not approval:
        return ""
    state = str(approval.get("state"))
    tone = {"approved": "ok", "pending": "warn"}.get(state, "bad")
    who = f" by {escape(str(approval['by']))}" if approval.get("by") else ""
    form = _link(approval.get("url"), "approval form") if _href(approval.get("url")) else ""
    return f'<span class="approval" data-state="{escape(state, quote=True)}">{_badge(state.replace("_", " "), tone)}{who} {form}</span>'


def _event_html(event: dict[str, Any]) -> str:
    """One rollout event as a timeline entry."""
    kind, details = str(event.get("kind")), event.get("details") or {}
    at = escape(str(event.get("at", ""))[:19].replace("T", " "))
    head = f'<li class="event" data-kind="{escape(kind, quote=True)}"><span class="muted">{at}</span> '
    if kind == "phase":
        weight = details.get("weight")
        text = (
            f"{_badge(str(details.get('phase')), 'info')} {'' if weight is None else escape(str(weight)) + '% canary '}"
        )
        return f"{head}{text}{escape(str(details.get('message') or ''))}</li>"
    if kind == "analysis":
        verdict = str(details.get("verdict"))
        tone = {"pass": "ok", "fail": "bad"}.get(verdict, "")
        weight = details.get("weight")
        rows = "".join(
            f"<tr><td>{escape(str(m.get('name')))}</td><td class='num'>{_num(m.get('value'))}</td>"
            f"<td class='num'>{_num(m.get('threshold'))}</td><td class='num'>{_num(m.get('stable'))}</td>"
            f"<td class='num'>{_num(m.get('canary'))}</td><td>"
            f"{'' if m.get('passed') is None else ('pass' if m.get('passed') else 'fail')}</td></tr>"
            for m in details.get("metrics") or []
        )
        table = (
            "<div class='scroll'><table class='analysis'><thead><tr><th>Metric</th><th class='num'>Value</th>"
            "<th class='num'>Threshold</th><th class='num'>Stable</th><th class='num'>Canary</th><th>Check</th></tr>"
            f"</thead><tbody>{rows}</tbody></table></div>"
            if rows
            else ""
        )
        return (
            f"{head}Analysis step {escape(str(details.get('step')))} "
            f"{'at full traffic' if weight is None else 'at ' + escape(str(weight)) + '%'}, "
            f"{escape(str(details.get('source') or ''))} over {_num(details.get('window_seconds'), 0)} s: "
            f"{_badge(verdict, tone)} {escape(str(details.get('message') or ''))}{table}</li>"
        )
    if kind == "shadow":
        verdict = str(details.get("verdict"))
        return (
            f"{head}Shadow comparison on {escape(str(details.get('requests')))} requests: agreement "
            f"{_num(details.get('agreement'))}, divergence {_num(details.get('divergence'))}, latency ratio "
            f"{_num(details.get('latency_ratio'), 2)} {_badge(verdict, {'pass': 'ok', 'fail': 'bad'}.get(verdict, ''))} "
            f"{escape(str(details.get('message') or ''))}</li>"
        )
    if kind == "approval":
        return f"{head}Approval: {_approval_html(details)}</li>"
    if kind == "result":
        outcome = str(details.get("outcome"))
        return f"{head}Result: {_badge(outcome, STATE_TONES.get(outcome, ''))} {escape(str(details.get('message') or ''))}</li>"
    return f"{head}{escape(kind)}</li>"


def _rollout_panel(rollouts: list[dict[str, Any]]) -> str:
    """The latest rollout: state, live canary weight, the analysis steps chart and the timeline of its events."""
    if not rollouts:
        return '<div class="panel rollout"><h3>Rollout</h3><p class="muted">No rollout recorded yet.</p></div>'
    # A live canary matters more than a newer candidate waiting for approval (that one has its own callout).
    rollout = next((r for r in rollouts if r["active"] and (r["phase"] or r["analysis"])), rollouts[0])
    state, weight = rollout["state"], rollout["weight"]
    weight_html = ""
    if rollout["active"] and weight is not None:
        shown = max(0, min(100, int(weight)))
        weight_html = (
            f'<div class="live-weight">Canary weight <strong>{shown}%</strong></div>'
            f'<div class="weight" role="img" aria-label="canary weight {shown}%"><span style="width:{shown}%"></span></div>'
        )
    timeline = "".join(_event_html(e) for e in rollout["timeline"])
    older = "".join(
        f"<li>v{escape(r['version'])} {escape(str(r['started_at'])[:16].replace('T', ' '))}: "
        f"{_badge(r['state'], STATE_TONES.get(r['state'], ''))}</li>"
        for r in rollouts
        if r is not rollout
    )
    return (
        f'<div class="panel rollout" data-rollout="{escape(rollout["rollout_id"], quote=True)}" '
        f'data-state="{escape(state, quote=True)}"><h3>Rollout of v{escape(rollout["version"])}</h3>'
        f"<p>{_badge(state, STATE_TONES.get(state, 'info'))} started "
        f"{escape(str(rollout['started_at'])[:19].replace('T', ' '))} UTC"
        f"{' · ' + _approval_html(rollout['approval']) if rollout['approval'] else ''}</p>{weight_html}"
        f"{canary_svg(rollout['analysis'])}<ol class='timeline'>{timeline}</ol>"
        + (f"<details><summary>Other rollouts</summary><ul>{older}</ul></details>" if older else "")
        + "</div>"
    )


def _serving_badge(model: dict[str, Any], rollouts: list[dict[str, Any]]) -> str:
    """What serves: an active rollout's phase and weight, else the champion (only a verified rollout moves it)."""
    active = next((r for r in rollouts if r["active"] and (r["phase"] or r["analysis"])), None)
    if active is not None:
        weight = f" {active['weight']}%" if active["weight"] is not None else ""
        return _badge(
            f"rollout v{active['version']}: {active['state']}{weight}", STATE_TONES.get(active["state"], "info")
        )
    champion = model["aliases"].get("champion")
    if champion is not None:
        return _badge(f"serving v{champion}", "ok")
    return _badge("not serving")


def _cold_start_badge(cold_starts: list[dict[str, Any]]) -> str:
    """The last wake of the model from scale to zero (local endpoint), with how many the records hold."""
    last = cold_starts[-1]
    seconds = last.get("cold_start_seconds")
    text = f"cold start {seconds:.2f} s" if _is_number(seconds) else "cold start"
    title = f"{len(cold_starts)} wake(s) from scale to zero; last: v{last.get('version')} at {last.get('woken_at')}"
    return _badge(text, "info", title)


def _drift_badge(points: list[dict[str, Any]]) -> str:
    if not points:
        return _badge("drift: no checks")
    last = points[-1]
    if last["drift_detected"]:
        return _badge(f"drift {last['drift_share']:.2f} > policy", "bad")
    return _badge(f"drift {last['drift_share']:.2f} ok", "ok")


def _versions_table(model: dict[str, Any]) -> str:
    champion = str(model["aliases"].get("champion"))
    rows = []
    for row in model["versions"]:
        alias_html = "".join(
            f'<span class="alias {escape(a if a in ("champion", "challenger") else "other")}">{escape(a)}</span> '
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
        status = row.get("rollout_status")
        if row["version"] == champion:
            serving = _badge("serving", "ok") + (f" <span class='muted'>{escape(status)}</span>" if status else "")
        elif status:
            serving = _badge(status, STATE_TONES.get(status, ""))
        else:
            serving = '<span class="muted">not deployed</span>'
        gate = row.get("gate_decision")
        gate_html = _badge(gate, "ok" if gate == "promote" else "bad") if gate else '<span class="muted">none</span>'
        rows.append(
            f'<tr class="version"><td>v{escape(row["version"])}</td><td>{alias_html}</td>'
            f'<td>{escape(_ts(row["created"]))}</td><td>{gate_html}</td><td class="deployment">{serving}</td>'
            f"<td>{mlflow_links}</td><td><details class='tags'><summary>{len(row['tags'])} tags</summary>"
            f"{_tags(row['tags'])}</details></td></tr>"
        )
    return (
        '<div class="scroll"><table class="versions"><thead><tr><th>Version</th><th>Aliases</th><th>Created</th>'
        "<th>Gate</th><th>Deployment</th><th>MLflow</th><th>Tags</th></tr></thead><tbody>"
        f"{''.join(rows)}</tbody></table></div>"
    )


def _drift_table(points: list[dict[str, Any]], report_base: str) -> str:
    rows = []
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
        rows.append(
            f"<tr><td>{escape(str(point['checked_at'] or point['run_ts']))}</td>"
            f"<td>{escape(str(window.get('start', '')))} … {escape(str(window.get('end', '')))}</td>"
            f"<td>v{escape(str(point['champion_version']))}</td><td class='num'>{point['drift_share']:.2f}</td>"
            f"<td>{verdict}</td><td>{escape(', '.join(point['drifted_features']))}</td>"
            f"<td>{_link(report, 'Evidently report')}</td><td>{run}</td></tr>"
        )
    return (
        "<div class='scroll'><table class='drift'><thead><tr><th>Checked</th><th>Window</th><th>Champion</th>"
        "<th class='num'>Drift share</th><th>Verdict</th><th>Drifted features</th><th>Report</th><th>MLflow run</th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def render_model_card(
    model: dict[str, Any],
    points: list[dict[str, Any]],
    base: str,
    *,
    audit: list[dict[str, Any]] | None,
    live: list[dict[str, Any]],
    rollouts: list[dict[str, Any]],
    cold_starts: list[dict[str, Any]] | None = None,
) -> str:
    """One model's card: status badges, pending approvals, gate evidence, rollout, charts, versions and audit."""
    name = model["name"]
    aliases = model["aliases"]
    badges = [
        f'<span class="alias {escape(a if a in ("champion", "challenger") else "other")}">{escape(a)} v{escape(str(v))}</span>'
        for a, v in aliases.items()
    ]
    badges += [_serving_badge(model, rollouts), _drift_badge(points)]
    if cold_starts:
        badges.append(_cold_start_badge(cold_starts))
    pending = [r for r in rollouts if (r.get("approval") or {}).get("state") == "pending"]
    if pending:
        badges.append(_badge("approval pending", "warn"))
    alias_text = " · ".join(f"{escape(a)} → v{escape(str(v))}" for a, v in aliases.items()) or "none"
    parts = [
        f'<section class="model card" data-model="{escape(name, quote=True)}"><header class="card-head">'
        f'<h2>{escape(name)}</h2><div class="badges">{"".join(badges)}</div></header>'
        f'<p class="aliases muted">Aliases: {alias_text}</p>'
    ]
    for rollout in pending:
        url = rollout["approval"].get("url")
        parts.append(
            f'<div class="callout pending-approval" data-version="{escape(rollout["version"], quote=True)}">'
            f"<strong>Approval pending</strong> for the rollout of v{escape(rollout['version'])} "
            f"(asked {escape(str(rollout['approval'].get('at', ''))[:16].replace('T', ' '))} UTC): "
            f"{_link(url, 'review and approve in Airflow') if _href(url) else 'open the task in Airflow'}</div>"
        )
    gate_entry = next((e for e in audit or [] if e.get("kind") == "gate_decision"), None)
    parts.append(f'<div class="grid">{_gate_panel(model, gate_entry)}{_rollout_panel(rollouts)}</div>')
    report_base = f"{base}{PREFIX}/reports/{quote(name)}"
    parts.append(f'<div class="panel wide drift-panel"><h3>Drift share over time</h3>{drift_svg(points, report_base)}')
    if points:
        parts.append(_drift_table(points, report_base))
    parts.append("</div>")
    if live:
        parts.append(f'<div class="panel wide live-panel">{live_performance_html(live)}{live_svg(live)}</div>')
    parts.append(f'<div class="panel wide versions-panel"><h3>Versions</h3>{_versions_table(model)}</div>')
    if audit is not None:
        parts.append(f'<div class="panel wide audit-panel">{render_audit(name, audit, base)}</div>')
    parts.append("</section>")
    return "".join(parts)


def render_page(
    models: list[dict[str, Any]],
    drift: dict[str, list[dict[str, Any]]],
    base: str,
    error: str | None,
    *,
    audit: dict[str, list[dict[str, Any]]] | None = None,
    trace: str | None = None,
    live: dict[str, list[dict[str, Any]]] | None = None,
    rollouts: dict[str, list[dict[str, Any]]] | None = None,
    cold_starts: dict[str, list[dict[str, Any]]] | None = None,
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
        body.append(
            render_model_card(
                model,
                drift.get(name, []),
                base,
                audit=None if audit is None else audit.get(name, []),
                live=(live or {}).get(name, []),
                rollouts=(rollouts or {}).get(name, []),
                cold_starts=(cold_starts or {}).get(name, []),
            )
        )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'><title>MLOps</title>"
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
        collect_cold_starts,
        collect_drift,
        collect_live_performance,
        collect_models,
        collect_rollouts,
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

    def rollouts_of(names: Any) -> dict[str, list[dict[str, Any]]]:
        found: dict[str, list[dict[str, Any]]] = {}
        for name in names:
            try:
                found[name] = collect_rollouts(get_settings().data_root, name)
            except Exception as err:  # an unreadable record must not hide the registry
                log.warning("Rollout records of %s unreadable: %s", name, err)
                found[name] = []
        return found

    def cold_starts_of(names: Any) -> dict[str, list[dict[str, Any]]]:
        found: dict[str, list[dict[str, Any]]] = {}
        for name in names:
            try:
                found[name] = collect_cold_starts(get_settings(), name)
            except Exception as err:  # an unreadable record must not hide the registry
                log.warning("Cold-start records of %s unreadable: %s", name, err)
                found[name] = []
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
        return HTMLResponse(
            render_page(
                models,
                drift,
                api_base_url(),
                error,
                audit=audit,
                trace=trace,
                live=live,
                rollouts=rollouts_of(drift),
                cold_starts=cold_starts_of(drift),
            )
        )

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
        return {
            "models": models,
            "drift": drift,
            "live_performance": live,
            "rollouts": rollouts_of(drift),
            "cold_starts": cold_starts_of(drift),
            "error": error,
        }

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
