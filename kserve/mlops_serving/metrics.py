"""Per-version Prometheus metrics of the model server, served on KServe's ``/metrics``.

KServe's REST server answers ``GET /metrics`` with prometheus-client's default registry
(``kserve.protocol.rest.server.metrics_handler``), so these metrics are registered there. Every series carries
``model_name``, ``model_version`` and ``component`` (``predictor`` or ``transformer``): a canary and its stable
version (two pods, or two local processes) are told apart by ``model_version`` alone, which is what the live
analysis (``mlops_provider.serving.live_analysis``) compares.

* ``mlops_requests_total``: requests answered, errors included.
* ``mlops_request_errors_total`` (``status``: the HTTP status KServe answers the exception with).
* ``mlops_request_duration_seconds``: a histogram of the model's time per request (pre/post-processing and
  prediction; the HTTP decoding before it is not included).
* ``mlops_prediction``: a histogram of the predictions, one observation per row: the positive-class probability
  (binary), the value (regression), or with ``class`` set, each class's probability (multiclass).

The metric calls live here so every model class (the predictor, the transformer, fused variants) records the same
series the same way. Cost: the label children are resolved once per version (:meth:`ServingMetrics.meter`), a
request then costs a few counter/histogram updates; ``benchmarks/bench_serving_metrics.py`` measures it.
With ``--workers`` > 1 every worker process keeps its own registry and a scrape reads one of them (as KServe's own
metrics); run one worker per pod, the way KServe scales.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from kserve.errors import InvalidInput, ModelNotFound, ModelNotReady
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

#: Label names of every series (the contract the live analysis' default queries use).
LABELS = ("model_name", "model_version", "component")
REQUESTS = "mlops_requests"
ERRORS = "mlops_request_errors"
DURATION = "mlops_request_duration_seconds"
PREDICTION = "mlops_prediction"
#: Latency buckets (seconds), fine from 1 to 100 ms, so that a p99 ratio read from the buckets (Prometheus'
#: ``histogram_quantile`` interpolates within one) is not swamped by the bucket width.
DURATION_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.0125, 0.015, 0.0175, 0.02, 0.025, 0.03, 0.035, 0.04,
    0.05, 0.06, 0.07, 0.08, 0.09, 0.1, 0.125, 0.15, 0.2, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
#: Prediction buckets of probabilities (binary, multiclass) in tenths, as the live analysis bins them.
PROBABILITY_BUCKETS = tuple(round(0.1 * i, 1) for i in range(1, 11))
#: Prediction buckets of a regression model: symmetric and logarithmic, for values of any scale.
VALUE_BUCKETS = (
    -1e4, -1e3, -100.0, -10.0, -1.0, -0.1, 0.0, 0.1, 1.0, 10.0, 100.0, 1e3, 1e4,
)  # fmt: skip
#: Error statuses whose series exist from the start (zero), so a rate over a window sees the first error too.
KNOWN_ERROR_STATUSES = ("400", "500")


class _Families:
    """The metric families of one registry (created once per registry: a name may be registered only once)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(REQUESTS, "Inference requests answered, errors included.", LABELS, registry=registry)
        self.errors = Counter(
            ERRORS, "Inference requests answered with an error.", (*LABELS, "status"), registry=registry
        )
        self.duration = Histogram(
            DURATION, "Time the model took per request.", LABELS, buckets=DURATION_BUCKETS, registry=registry
        )
        self.probabilities = Histogram(
            PREDICTION,
            "Predictions, one per row (per class for a multiclass model).",
            (*LABELS, "class"),
            buckets=PROBABILITY_BUCKETS,
            registry=registry,
        )
        self.values = Histogram(
            f"{PREDICTION}_value",
            "Predicted values of a regression model, one per row.",
            LABELS,
            buckets=VALUE_BUCKETS,
            registry=registry,
        )


_FAMILIES: dict[int, _Families] = {}


def _families(registry: CollectorRegistry) -> _Families:
    key = id(registry)
    if key not in _FAMILIES:
        _FAMILIES[key] = _Families(registry)
    return _FAMILIES[key]


def status_of(error: BaseException) -> str:
    """The HTTP status KServe answers ``error`` with (its exception handlers' mapping)."""
    if isinstance(error, InvalidInput):
        return "400"
    if isinstance(error, ModelNotFound):
        return "404"
    if isinstance(error, ModelNotReady):
        return "503"
    return "500"


class VersionMeter:
    """The series of one model version and component, resolved once (cheap per request)."""

    def __init__(self, families: _Families, labels: dict[str, str], task: str, classes: list | None) -> None:
        self._families = families
        self._labels = labels
        self._requests = families.requests.labels(**labels)
        self._duration = families.duration.labels(**labels)
        self._errors = {status: families.errors.labels(**labels, status=status) for status in KNOWN_ERROR_STATUSES}
        self.task = task
        self._single: Histogram | None
        if task == "regression":
            self._per_class: list[Any] = []
            self._single = families.values.labels(**labels)  # type: ignore[assignment]
        elif task == "multiclass":
            self._per_class = [families.probabilities.labels(**labels, **{"class": str(c)}) for c in classes or []]
            self._single = None
        else:
            self._per_class = []
            self._single = families.probabilities.labels(**labels, **{"class": ""})

    def served(self, seconds: float) -> None:
        """Count one answered request that took ``seconds``."""
        self._requests.inc()
        self._duration.observe(seconds)

    def failed(self, error: BaseException, seconds: float) -> None:
        """Count one request answered with the status of ``error``."""
        status = status_of(error)
        child = self._errors.get(status)
        if child is None:
            child = self._errors[status] = self._families.errors.labels(**self._labels, status=status)
        child.inc()
        self.served(seconds)

    def predictions(self, predictions: np.ndarray) -> None:
        """Observe a batch's predictions: ``[n]`` values, or ``[n, classes]`` probabilities (multiclass)."""
        if self._per_class:
            matrix = np.asarray(predictions, dtype=np.float64).reshape(len(predictions), -1)
            for column, child in enumerate(self._per_class[: matrix.shape[1]]):
                observe_batch(child, matrix[:, column])
        elif self._single is not None:
            observe_batch(self._single, np.asarray(predictions, dtype=np.float64).ravel())


def observe_batch(histogram: Histogram, values: np.ndarray) -> None:
    """``histogram.observe`` of each value, one increment per touched bucket instead of one per value.

    The same series as observing one by one (prometheus_client keeps per-bucket counts and a sum; each value counts
    in the first bucket whose bound is at least the value, a NaN in none and makes the sum NaN). Histograms of
    another client implementation are observed one by one.
    """
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(values) < 8:
        for value in values.tolist():
            histogram.observe(value)
        return
    counts = np.bincount(np.searchsorted(np.asarray(bounds), values, side="left"), minlength=len(bounds) + 1)
    for index in np.flatnonzero(counts[: len(bounds)]).tolist():
        buckets[index].inc(int(counts[index]))
    total.inc(float(values.sum()))


class ServingMetrics:
    """Meters of one served model (a model name and a component), one per version.

    :param model_name: the served model's name.
    :param component: ``predictor`` or ``transformer``.
    :param registry: default the registry KServe serves on ``/metrics``.
    """

    def __init__(self, model_name: str, component: str, registry: CollectorRegistry = REGISTRY) -> None:
        self.model_name = model_name
        self.component = component
        self._families = _families(registry)
        self._meters: dict[str, VersionMeter] = {}

    def meter(self, version: str, task: str = "binary", classes: list | None = None) -> VersionMeter:
        """The meter of ``version`` (its series start at zero when first asked for)."""
        meter = self._meters.get(version)
        if meter is None:
            labels = {"model_name": self.model_name, "model_version": str(version), "component": self.component}
            meter = self._meters[version] = VersionMeter(self._families, labels, task, classes)
        return meter
