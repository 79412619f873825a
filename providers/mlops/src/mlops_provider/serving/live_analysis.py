"""Judge a canary (or shadow) against the stable version on the same live window, as Flagger and Kayenta do.

Probes (:mod:`~mlops_provider.serving.analysis`) tell whether a version answers at all; only user traffic tells
whether it answers as well as the version it replaces. :func:`judge_live_window` reads what both versions served
in one window ``[start, end]`` and compares them, metric by metric:

* ``error_rate``: canary minus stable share of failed requests (``difference``; default at most 0.01);
* ``p99_latency_ms``: canary p99 over stable p99 (``ratio``; default at most 1.5);
* ``prediction_divergence``: the Jensen-Shannon divergence (base 2) of the two versions' prediction
  distributions (``divergence``; default at most 0.1; multiclass: the largest over the class probabilities).
  Jensen-Shannon rather than PSI: both sides are live samples of the same window (neither is the reference PSI
  assumes), it is symmetric, bounded in [0, 1] whatever the traffic, and finite when a bin is empty on one side,
  where PSI needs an arbitrary epsilon and explodes on exactly the buckets a broken canary fills alone.

Before any verdict each version must have served ``min_requests`` requests in the window; with fewer the verdict
is ``inconclusive``, never ``pass`` (Flagger fails a check on "no values"; here the caller decides to wait).

Metrics are :class:`MetricTemplate` objects, like Flagger's MetricTemplate: a name, a PromQL query template with
the placeholders ``{model}``, ``{version}``, ``{window}`` (a Prometheus duration such as ``120s``) and
``{component}``, a threshold and how canary and stable are compared. The defaults query the model server's own
series (``kserve/mlops_serving/metrics.py``), ``component="predictor"``.

Sources (:class:`LiveSource`, one interface):

* :class:`PrometheusSource`: the queries through :class:`~mlops_provider.hooks.prometheus.PrometheusHook`, each
  evaluated at ``end`` over the window.
* :class:`PredictionLogSource`: the fallback when no Prometheus answers: the prediction log
  (``<data_root>/predictions/<model>/dt=.../*.parquet``, written by ``kserve/mlops_serving/prediction_log.py``),
  read with :func:`mlops_provider.partitions.read_window` and filtered on ``served_at`` and ``model_version``. The
  log holds served rows only, so it measures requests, p99 latency (the server's time per request) and the
  prediction distribution, but not errors (``error_rate`` is reported unmeasured; the probes catch errors). Rows
  reach the log every ``--prediction_log_flush_seconds``: judge a window that ended at least that long ago.

Shadow mode adds ``agreement`` from the prediction log: the share of requests (joined on ``request_id`` and
``request_row``: a mirrored request keeps its id) whose predicted label matches (binary: the same side of 0.5;
multiclass: the same class) or, for regression, whose values are within ``score_tolerance`` (relative).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pandas as pd

    from mlops_provider.hooks.prometheus import PrometheusHook

log = logging.getLogger(__name__)

MODES = ("canary", "shadow")
#: How canary and stable values become the checked value (always ``value <= threshold`` to pass).
COMPARISONS = ("difference", "ratio", "divergence")
#: What the prediction log can measure for a template (``None``: nothing, the metric stays unmeasured there).
LOG_MEASURES = ("requests", "p99_latency_ms", "predictions")
PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"
#: What a step left inconclusive ends with: a rollback, or the probes' verdict.
ON_INCONCLUSIVE = ("rollback", "probes")
PROMETHEUS, PREDICTION_LOG = "prometheus", "prediction_log"

_SELECTOR = 'model_name="{model}",model_version="{version}",component="{component}"'
REQUESTS_QUERY = f"sum(increase(mlops_requests_total{{{_SELECTOR}}}[{{window}}]))"


@dataclass(frozen=True)
class MetricTemplate:
    """One check of the canary against stable.

    :param name: the metric's name in the verdict.
    :param query: PromQL with ``{model}``, ``{version}``, ``{window}``, ``{component}``; a scalar per version, or
        for ``divergence`` a histogram: a vector by ``le`` (and optionally ``class``) of cumulative bucket counts.
    :param threshold: largest value that passes.
    :param comparison: ``difference`` (canary - stable), ``ratio`` (canary / stable) or ``divergence``
        (Jensen-Shannon, base 2, of the two distributions).
    :param log_measure: what :class:`PredictionLogSource` computes for it (see :data:`LOG_MEASURES`); ``None``:
        the log cannot measure it.
    """

    name: str
    query: str
    threshold: float
    comparison: str
    log_measure: str | None = None

    def __post_init__(self) -> None:
        if self.comparison not in COMPARISONS:
            raise ValueError(
                f"Metric {self.name!r}: comparison must be one of {list(COMPARISONS)}, got {self.comparison!r}."
            )
        if self.log_measure not in (None, *LOG_MEASURES):
            raise ValueError(f"Metric {self.name!r}: log_measure must be one of {list(LOG_MEASURES)} or None.")
        if not isinstance(self.threshold, int | float) or math.isnan(self.threshold):
            raise ValueError(f"Metric {self.name!r}: threshold must be a number, got {self.threshold!r}.")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MetricTemplate:
        """Build from a mapping (the operator's ``live_analysis`` option), naming a missing key."""
        missing = [k for k in ("name", "query", "threshold", "comparison") if k not in data]
        if missing:
            raise ValueError(f"Metric template {data!r} lacks {missing}.")
        return cls(
            name=str(data["name"]),
            query=str(data["query"]),
            threshold=float(data["threshold"]),
            comparison=str(data["comparison"]),
            log_measure=data.get("log_measure"),
        )


ERROR_RATE = MetricTemplate(
    "error_rate",
    f"(sum(increase(mlops_request_errors_total{{{_SELECTOR}}}[{{window}}])) or vector(0)) / "
    f"sum(increase(mlops_requests_total{{{_SELECTOR}}}[{{window}}]))",
    threshold=0.01,
    comparison="difference",
)
P99_LATENCY = MetricTemplate(
    "p99_latency_ms",
    f"histogram_quantile(0.99, sum by (le) (increase(mlops_request_duration_seconds_bucket{{{_SELECTOR}}}"
    f"[{{window}}]))) * 1000",
    threshold=1.5,
    comparison="ratio",
    log_measure="p99_latency_ms",
)
PREDICTION_DIVERGENCE = MetricTemplate(
    "prediction_divergence",
    f'sum by (le, class) (increase({{__name__=~"mlops_prediction(_value)?_bucket",{_SELECTOR}}}[{{window}}]))',
    threshold=0.1,
    comparison="divergence",
    log_measure="predictions",
)
DEFAULT_METRICS = (ERROR_RATE, P99_LATENCY, PREDICTION_DIVERGENCE)


@dataclass(frozen=True)
class LiveAnalysisConfig:
    """How live traffic is judged.

    :param min_requests: requests each version must have served in the window before any verdict.
    :param metrics: the checks (default error rate, p99 latency ratio, prediction divergence).
    :param requests_query: PromQL counting a version's requests in the window.
    :param component: the series' ``component`` label (``predictor``: every prediction passes there).
    :param min_agreement: shadow mode: smallest share of matching predictions that passes.
    :param score_tolerance: shadow mode, regression: relative difference within which two values agree.
    :param prometheus_conn_id: the Prometheus connection (local default without one).
    :param prediction_log_uri: the model's prediction log; default ``<data_root>/predictions/<model>``.
    :param on_inconclusive: what a step (KServe or local) whose live window stays below ``min_requests`` ends with:
        ``rollback`` (never promote without a live verdict) or ``probes`` (the probes' passed verdict stands, the
        inconclusive live verdict is recorded beside it: for endpoints with little traffic).
    :param inconclusive_wait: seconds an inconclusive step is judged again over its growing window before
        ``on_inconclusive`` applies (None: until the progress deadline).
    """

    min_requests: int = 50
    metrics: tuple[MetricTemplate, ...] = DEFAULT_METRICS
    requests_query: str = REQUESTS_QUERY
    component: str = "predictor"
    min_agreement: float = 0.95
    score_tolerance: float = 0.01
    prometheus_conn_id: str = "prometheus_default"
    prediction_log_uri: str | None = None
    on_inconclusive: str = "rollback"
    inconclusive_wait: float | None = None

    def __post_init__(self) -> None:
        if self.on_inconclusive not in ON_INCONCLUSIVE:
            raise ValueError(f"on_inconclusive must be one of {list(ON_INCONCLUSIVE)}, got {self.on_inconclusive!r}.")
        if self.inconclusive_wait is not None and self.inconclusive_wait < 0:
            raise ValueError(f"inconclusive_wait must be >= 0 seconds, got {self.inconclusive_wait}.")
        if self.min_requests < 1:
            raise ValueError(f"min_requests must be at least 1 (a verdict needs traffic), got {self.min_requests}.")
        if not 0 <= self.min_agreement <= 1:
            raise ValueError(f"min_agreement must be within [0, 1], got {self.min_agreement}.")
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError(f"Metric names must be unique, got {names}.")

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> LiveAnalysisConfig:
        """Build from a mapping (the deploy operator's ``live_analysis``); ``metrics`` as mappings."""
        data = dict(data or {})
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Unknown live_analysis option(s) {unknown}; known: {sorted(known)}.")
        if "metrics" in data:
            data["metrics"] = tuple(
                m if isinstance(m, MetricTemplate) else MetricTemplate.from_dict(m) for m in data["metrics"]
            )
        return cls(**data)


def render_query(template: str, *, model: str, version: str, window: str, component: str) -> str:
    """Fill the placeholders of a PromQL template (label values escaped; PromQL's own braces untouched)."""

    def quoted(value: str) -> str:
        return value.replace("\\", "\\\\").replace('"', '\\"')

    return (
        template.replace("{model}", quoted(model))
        .replace("{version}", quoted(version))
        .replace("{component}", quoted(component))
        .replace("{window}", window)
    )


#: A version's measurement: a number, a distribution (``{group: counts per bin}``), or None (unmeasured).
Measurement = float | dict[str, list[float]] | None


class LiveSource(Protocol):
    """Where live measurements come from."""

    name: str

    def requests(self, model: str, version: str, start: datetime, end: datetime) -> float | None:
        """How many requests ``version`` served in the window (None: unknown)."""

    def measure(
        self, template: MetricTemplate, model: str, version: str, start: datetime, end: datetime
    ) -> Measurement:
        """``template``'s value for ``version`` in the window."""


def prometheus_window(start: datetime, end: datetime) -> str:
    """The window as a Prometheus duration (whole seconds, at least one)."""
    return f"{max(1, round((end - start).total_seconds()))}s"


class PrometheusSource:
    """Measurements from Prometheus: each template's query evaluated at the window's end over the window."""

    name = PROMETHEUS

    def __init__(self, hook: PrometheusHook, config: LiveAnalysisConfig) -> None:
        self.hook = hook
        self.config = config

    def _query(self, query: str, model: str, version: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        promql = render_query(
            query, model=model, version=version, window=prometheus_window(start, end), component=self.config.component
        )
        return self.hook.query(promql, at=end)

    def requests(self, model: str, version: str, start: datetime, end: datetime) -> float | None:
        """The version's request counter's increase over the window (no series: none served)."""
        result = self._query(self.config.requests_query, model, version, start, end)
        return _finite(result[0]["value"]) if result else 0.0

    def measure(
        self, template: MetricTemplate, model: str, version: str, start: datetime, end: datetime
    ) -> Measurement:
        """The template's query for the version: a scalar, or per-bin counts of a histogram (``divergence``)."""
        result = self._query(template.query, model, version, start, end)
        if template.comparison != "divergence":
            return _finite(result[0]["value"]) if result else None
        return _bins_from_buckets(result)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _bins_from_buckets(result: list[dict[str, Any]]) -> dict[str, list[float]] | None:
    """Per group (the labels besides ``le``), counts per bin from cumulative bucket counts."""
    groups: dict[str, list[tuple[float, float]]] = {}
    for item in result:
        labels = dict(item["labels"])
        bound = float(labels.pop("le", "+Inf"))
        key = ",".join(f"{k}={v}" for k, v in sorted(labels.items()) if v)
        groups.setdefault(key, []).append((bound, item["value"]))
    out = {}
    for key, buckets in groups.items():
        cumulative = [max(0.0, value) for _, value in sorted(buckets)]
        out[key] = [cumulative[0], *(max(0.0, b - a) for a, b in zip(cumulative, cumulative[1:], strict=False))]
    return out or None


#: Bins of probabilities (upper bounds, as the model server's histogram) and of regression values.
PROBABILITY_BOUNDS = tuple(round(0.1 * i, 1) for i in range(1, 11))
VALUE_BOUNDS = (-1e4, -1e3, -100.0, -10.0, -1.0, -0.1, 0.0, 0.1, 1.0, 10.0, 100.0, 1e3, 1e4)


class PredictionLogSource:
    """Measurements from the prediction log (see the module docstring for what it can and cannot measure).

    :param uri: the model's prediction log folder; default ``<data_root>/predictions/<model>``.
    """

    name = PREDICTION_LOG

    def __init__(self, uri: str | None = None) -> None:
        self.uri = uri
        self._frames: dict[tuple[str, datetime, datetime], pd.DataFrame] = {}

    def rows(self, model: str, start: datetime, end: datetime) -> pd.DataFrame:
        """The log's rows served in ``[start, end]`` (read once per window)."""
        key = (model, start, end)
        if key not in self._frames:
            import pandas as pd

            from mlops_provider.names import zone_uri
            from mlops_provider.partitions import read_window
            from mlops_provider.trace import PREDICTIONS_ZONE

            uri = self.uri
            if uri is None:
                from mlops_provider.settings import get_settings

                uri = zone_uri(get_settings().data_root, PREDICTIONS_ZONE, model)
            frame = read_window(uri, start.astimezone(UTC).date(), end.astimezone(UTC).date()).frame
            if not frame.empty:
                served = pd.to_datetime(frame["served_at"], utc=True)
                frame = frame[(served >= pd.Timestamp(start)) & (served <= pd.Timestamp(end))]
                frame = frame.assign(model_version=frame["model_version"].astype(str))
            self._frames[key] = frame
        return self._frames[key]

    def _version(self, model: str, version: str, start: datetime, end: datetime) -> pd.DataFrame:
        frame = self.rows(model, start, end)
        return frame if frame.empty else frame[frame["model_version"] == str(version)]

    def requests(self, model: str, version: str, start: datetime, end: datetime) -> float | None:
        """Distinct request ids the version logged in the window."""
        rows = self._version(model, version, start, end)
        return 0.0 if rows.empty else float(rows["request_id"].nunique())

    def measure(
        self, template: MetricTemplate, model: str, version: str, start: datetime, end: datetime
    ) -> Measurement:
        """The template's ``log_measure`` for the version (None when the log cannot measure it)."""
        import numpy as np

        rows = self._version(model, version, start, end)
        if template.log_measure is None or rows.empty:
            return None
        if template.log_measure == "requests":
            return float(rows["request_id"].nunique())
        if template.log_measure == "p99_latency_ms":
            per_request = rows.drop_duplicates("request_id")["latency_ms"].to_numpy(dtype=float)
            per_request = per_request[np.isfinite(per_request)]
            return float(np.percentile(per_request, 99)) if len(per_request) else None
        class_columns = sorted(c for c in rows.columns if c.startswith("prediction_class_"))
        if class_columns:
            return {
                f"class={c.removeprefix('prediction_class_')}": _histogram(rows[c].to_numpy(dtype=float))
                for c in class_columns
            }
        return {"": _histogram(rows["prediction"].to_numpy(dtype=float))}


def _histogram(values: Any) -> list[float]:
    """Counts per bin with the model server's bounds: tenths for probabilities, else the logarithmic ones."""
    import numpy as np

    values = values[np.isfinite(values)]
    probabilities = bool(len(values)) and float(values.min()) >= 0.0 and float(values.max()) <= 1.0
    bounds = PROBABILITY_BOUNDS if probabilities else VALUE_BOUNDS
    # Bins (lower, upper] as Prometheus' ``le`` buckets, then the overflow bin.
    index = np.searchsorted(np.asarray(bounds), values, side="left")
    return np.bincount(index, minlength=len(bounds) + 1).astype(float).tolist()


def jensen_shannon(p: Sequence[float], q: Sequence[float]) -> float | None:
    """Jensen-Shannon divergence (base 2, in [0, 1]) of two histograms with the same bins; None if one is empty."""
    size = max(len(p), len(q))
    p = [*p, *[0.0] * (size - len(p))]
    q = [*q, *[0.0] * (size - len(q))]
    total_p, total_q = sum(p), sum(q)
    if total_p <= 0 or total_q <= 0:
        return None
    p = [x / total_p for x in p]
    q = [x / total_q for x in q]

    def kl(a: list[float], m: list[float]) -> float:
        return sum(x * math.log2(x / y) for x, y in zip(a, m, strict=True) if x > 0)

    middle = [(x + y) / 2 for x, y in zip(p, q, strict=True)]
    return max(0.0, min(1.0, (kl(p, middle) + kl(q, middle)) / 2))


def compare(template: MetricTemplate, stable: Measurement, canary: Measurement) -> float | None:
    """The checked value of ``template`` from both versions' measurements (None: not measurable)."""
    if stable is None or canary is None:
        return None
    if template.comparison == "divergence":
        if not isinstance(stable, dict) or not isinstance(canary, dict):
            return None
        values = [jensen_shannon(stable[g], canary[g]) for g in stable if g in canary]
        measured = [v for v in values if v is not None]
        return max(measured) if measured else None
    if isinstance(stable, dict) or isinstance(canary, dict):
        return None
    if template.comparison == "difference":
        return canary - stable
    if stable <= 0:
        return None if canary <= 0 else math.inf
    return canary / stable


def shadow_agreement(
    rows: pd.DataFrame, stable_version: str, candidate_version: str, tolerance: float
) -> tuple[float | None, int]:
    """Share of mirrored requests on which both versions agree, and how many were joined."""
    import numpy as np

    if rows.empty:
        return None, 0
    keys = ["request_id", "request_row"] if "request_row" in rows.columns else ["request_id"]
    columns = [*keys, "prediction"]
    stable = rows[rows["model_version"] == str(stable_version)][columns]
    shadow = rows[rows["model_version"] == str(candidate_version)][columns]
    joined = stable.drop_duplicates(keys).merge(shadow.drop_duplicates(keys), on=keys, suffixes=("_stable", "_shadow"))
    if joined.empty:
        return None, 0
    a = joined["prediction_stable"].to_numpy(dtype=float)
    b = joined["prediction_shadow"].to_numpy(dtype=float)
    multiclass = any(c.startswith("prediction_class_") for c in rows.columns)
    probabilities = not multiclass and bool(np.all((a >= 0) & (a <= 1) & (b >= 0) & (b <= 1)))
    if multiclass:
        same = a == b
    elif probabilities:
        same = (a >= 0.5) == (b >= 0.5)
    else:
        same = np.abs(a - b) <= tolerance * np.maximum(1.0, np.abs(a))
    return float(same.mean()), len(joined)


@dataclass
class _Verdict:
    metrics: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def default_source(config: LiveAnalysisConfig) -> LiveSource:
    """Prometheus when it answers on the configured connection (or the local default), else the prediction log."""
    from mlops_provider.hooks.prometheus import PrometheusHook

    hook = PrometheusHook(config.prometheus_conn_id)
    reachable, detail = hook.test_connection()
    if reachable:
        return PrometheusSource(hook, config)
    log.warning("No Prometheus for the live analysis (%s): reading the prediction log instead.", detail)
    return PredictionLogSource(config.prediction_log_uri)


def _resolve_source(source: LiveSource | str | None, config: LiveAnalysisConfig) -> LiveSource:
    if source is None:
        return default_source(config)
    if source == PROMETHEUS:
        from mlops_provider.hooks.prometheus import PrometheusHook

        return PrometheusSource(PrometheusHook(config.prometheus_conn_id), config)
    if source == PREDICTION_LOG:
        return PredictionLogSource(config.prediction_log_uri)
    if isinstance(source, str):
        raise ValueError(f"source must be {PROMETHEUS!r}, {PREDICTION_LOG!r} or a LiveSource, got {source!r}.")
    return source


def _rounded(value: float | None) -> float | None:
    return None if value is None else (value if math.isinf(value) else round(value, 6))


def _scalar(value: Measurement) -> float | None:
    if isinstance(value, dict):
        return float(sum(sum(v) for v in value.values()))  # a distribution: its observations
    return _rounded(value)


def judge_live_window(
    *,
    mode: str,
    model_name: str,
    stable_version: str,
    candidate_version: str,
    start: datetime,
    end: datetime,
    weight: int | None = None,
    config: LiveAnalysisConfig | None = None,
    source: LiveSource | str | None = None,
) -> dict[str, Any]:
    """Compare ``candidate_version`` with ``stable_version`` on the live window ``[start, end]``.

    :param mode: ``canary`` (split traffic) or ``shadow`` (mirrored traffic: adds ``agreement``).
    :param weight: the canary's traffic share, for the message.
    :param source: a :class:`LiveSource`, ``"prometheus"``, ``"prediction_log"``, or None: Prometheus when it
        answers, else the prediction log.
    :return: the ``analysis`` event shape of :mod:`~mlops_provider.serving.records`: ``{"verdict", "metrics",
        "source", "window_seconds", "message"}``; each metric ``{"name", "value", "threshold", "passed",
        "stable", "canary"}``.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}.")
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware datetimes (UTC).")
    if end <= start:
        raise ValueError(f"The live window must end after it starts: start {start.isoformat()}, end {end.isoformat()}.")
    config = config or LiveAnalysisConfig()
    live = _resolve_source(source, config)
    window_seconds = (end - start).total_seconds()
    verdict = _Verdict()

    stable_requests = live.requests(model_name, stable_version, start, end) or 0.0
    canary_requests = live.requests(model_name, candidate_version, start, end) or 0.0
    enough = min(stable_requests, canary_requests) >= config.min_requests
    verdict.metrics.append(
        {
            "name": "requests",
            "value": _rounded(min(stable_requests, canary_requests)),
            "threshold": float(config.min_requests),
            "passed": enough,
            "stable": _rounded(stable_requests),
            "canary": _rounded(canary_requests),
        }
    )
    for template in config.metrics:
        stable = live.measure(template, model_name, stable_version, start, end)
        canary = live.measure(template, model_name, candidate_version, start, end)
        value = compare(template, stable, canary)
        passed = None if value is None else value <= template.threshold
        verdict.metrics.append(
            {
                "name": template.name,
                "value": _rounded(value),
                "threshold": template.threshold,
                "passed": passed,
                "stable": _scalar(stable),
                "canary": _scalar(canary),
            }
        )
        if passed is False:
            verdict.failures.append(f"{template.name} {value:.4g} > {template.threshold:g} ({template.comparison})")
    if mode == "shadow":
        log_source = live if isinstance(live, PredictionLogSource) else PredictionLogSource(config.prediction_log_uri)
        agreement, joined = shadow_agreement(
            log_source.rows(model_name, start, end), stable_version, candidate_version, config.score_tolerance
        )
        passed = None if agreement is None else agreement >= config.min_agreement
        verdict.metrics.append(
            {
                "name": "agreement",
                "value": _rounded(agreement),
                "threshold": config.min_agreement,
                "passed": passed,
                "stable": float(joined),
                "canary": float(joined),
            }
        )
        if passed is False:
            verdict.failures.append(f"agreement {agreement:.2%} < {config.min_agreement:.0%} on {joined} requests")

    share = f" at {weight}%" if weight is not None else ""
    what = f"{mode} version {candidate_version}{share} vs stable {stable_version} over {window_seconds:.0f} s"
    measured = [m for m in verdict.metrics[1:] if m["passed"] is not None]
    if not enough:
        outcome = INCONCLUSIVE
        message = (
            f"Inconclusive: {what}: stable served {stable_requests:.0f} and the {mode} {canary_requests:.0f} "
            f"request(s); each needs at least {config.min_requests} before a verdict (from {live.name})."
        )
    elif verdict.failures:
        outcome = FAIL
        message = f"Failed: {what} (from {live.name}): {'; '.join(verdict.failures)}."
    elif not measured:
        outcome = INCONCLUSIVE
        message = f"Inconclusive: {what}: no metric could be measured from {live.name}."
    else:
        outcome = PASS
        message = f"Passed: {what} (from {live.name}): {len(measured)} metric(s) within thresholds."
    log.info("Live analysis of %s: %s", model_name, message)
    return {
        "verdict": outcome,
        "metrics": verdict.metrics,
        "source": live.name,
        "window_seconds": window_seconds,
        "message": message,
    }
