"""Probe a model endpoint and judge it: error rate, p99 latency and output range, as Flagger's analysis does.

:func:`smoke_check` is one check (``requests`` single-row V2 requests); :func:`run_analysis` repeats checks every
``interval`` seconds until ``iterations`` pass or ``failure_threshold`` fail. Standard library only (``urllib``).
"""

from __future__ import annotations

import json
import logging
import math
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mlops_provider.exceptions import RolloutFailedError
from mlops_provider.payloads import parse_payload

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnalysisConfig:
    """How a new version is judged before it takes (more) traffic.

    :param interval: seconds between checks.
    :param iterations: passing checks that complete a step.
    :param failure_threshold: failed checks that fail the analysis (and roll back).
    :param requests: requests per check.
    :param max_error_rate: largest tolerated share of failed requests per check.
    :param max_latency_ms: largest tolerated p99 latency per check.
    :param prediction_range: predictions must be finite and within this range.
    :param timeout: seconds per request.
    :param n_features: the model's width when the endpoint does not report it and no training set is given.
    """

    interval: float = 5.0
    iterations: int = 3
    failure_threshold: int = 2
    requests: int = 10
    max_error_rate: float = 0.0
    max_latency_ms: float = 500.0
    prediction_range: tuple[float, float] = (0.0, 1.0)
    timeout: float = 10.0
    n_features: int | None = None


def http_get_json(url: str, timeout: float = 2.0) -> tuple[int, Any]:
    """GET ``url`` and return ``(status, json_or_text)``; ``(0, error)`` when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read()
            return response.status, json.loads(body or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except (OSError, ValueError) as exc:
        return 0, str(exc)


def post_json(url: str, body: dict, timeout: float) -> tuple[int, Any]:
    """POST ``body`` as JSON and return ``(status, json_or_text)``; ``(0, error)`` when nothing answers."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")[:500]
    except (OSError, ValueError) as exc:
        return 0, str(exc)


@dataclass(frozen=True)
class ProbeRows:
    """Rows of a model's features to probe it with, in the model's order.

    A model with categorical features gets them as text: ``columns`` names every feature and ``categorical``
    the text ones, and requests use the column form (one ``[n]`` tensor per feature, ``BYTES`` for text).

    ``entities`` (instead of feature rows): entity-keyed instances (entity keys and request fields) that go through
    the full feature path: the Feast transformer looks their features up in the online store, as for a user's
    request, and the V1 answer names the version that served it.
    """

    rows: list[list[Any]]
    columns: tuple[str, ...] = ()
    categorical: frozenset[str] = frozenset()
    entities: tuple[dict[str, Any], ...] = ()

    def request(self, start: int = 0, count: int = 1) -> dict:
        """The request body of ``count`` rows from ``start`` on (wrapping around): V1 instances for entities, else V2."""
        if self.entities:
            return {"instances": [self.entities[(start + i) % len(self.entities)] for i in range(count)]}
        picked = [self.rows[(start + i) % len(self.rows)] for i in range(count)]
        return v2_request(picked, self.columns if self.categorical else None, self.categorical)

    def url(self, endpoint_url: str, model_name: str) -> str:
        """Where these probes go: the V1 predict path for entities (the transformer's), else V2 infer."""
        if self.entities:
            return f"{endpoint_url.rstrip('/')}/v1/models/{model_name}:predict"
        return f"{endpoint_url.rstrip('/')}/v2/models/{model_name}/infer"


def v2_request(
    rows: Sequence[Sequence[Any]], columns: Sequence[str] | None = None, categorical: frozenset[str] = frozenset()
) -> dict:
    """Build a V2 infer request body: one FP32 tensor ``input-0``, or with ``columns`` one ``[n]`` tensor per column.

    In the column form the ``categorical`` columns are ``BYTES`` (strings, nulls stay null), the others FP32.
    Probe rows are logged like any request (logging is the server's setting, never the client's); they are
    rows of the training set, so they do not move the drift verdict.
    """
    if columns:
        return {
            "inputs": [
                {"name": name, "shape": [len(rows)], "datatype": "BYTES", "data": [r[j] for r in rows]}
                if name in categorical
                else {
                    "name": name,
                    "shape": [len(rows)],
                    "datatype": "FP32",
                    "data": [float("nan") if r[j] is None else float(r[j]) for r in rows],
                }
                for j, name in enumerate(columns)
            ]
        }
    return {
        "inputs": [
            {
                "name": "input-0",
                "shape": [len(rows), len(rows[0])],
                "datatype": "FP32",
                "data": [float(v) for r in rows for v in r],
            }
        ],
    }


def entity_rows(manifest: dict[str, Any], limit: int = 20) -> tuple[dict[str, Any], ...]:
    """Entity-keyed probe instances from a training set: its newest rows, every column but the label.

    The entity keys and the request fields the transformer needs come from the row (the timestamp as ISO text);
    the feature columns the transformer reads from the online store are ignored by it. Missing values become nulls.
    """
    from mlops_provider.storage import read_parquet

    frame = read_parquet(manifest["uri"])
    timestamp = manifest.get("timestamp_column")
    if timestamp in frame.columns:  # the newest entities are the ones most likely materialized online
        frame = frame.sort_values(timestamp)
    frame = frame.drop(columns=[c for c in (manifest.get("label_column"),) if c in frame.columns])
    instances = []
    for record in frame.tail(limit).to_dict("records"):
        instance = {}
        for key, value in record.items():
            value = value.item() if hasattr(value, "item") else value
            if hasattr(value, "isoformat"):
                value = value.isoformat()
            instance[str(key)] = None if isinstance(value, float) and math.isnan(value) else value
        instances.append(instance)
    return tuple(instances)


def entity_fields(metadata: Any) -> list[str] | None:
    """The entity keys and request fields an endpoint's V2 metadata lists (the transformer's), or None."""
    inputs = metadata.get("inputs") if isinstance(metadata, dict) else None
    if not isinstance(inputs, list):
        return None
    names = [str(i.get("name")) for i in inputs if isinstance(i, dict) and len(i.get("shape") or []) == 1]
    has_matrix = any(isinstance(i, dict) and len(i.get("shape") or []) == 2 for i in inputs)
    return names if has_matrix and names else None


def sample_rows(
    endpoint_url: str,
    model_name: str,
    training_set: dict | str | None = None,
    n_features: int | None = None,
    *,
    feature_path: bool = False,
) -> ProbeRows:
    """Rows for smoke requests: from the training set when given, else synthetic rows of the model's width.

    Training-set rows keep categorical features as text (the manifest's ``categorical_columns``). The synthetic
    width comes from the endpoint's V2 model metadata (``inputs[0].shape[-1]``), else ``n_features``.

    :param feature_path: the endpoint has the Feast transformer in front: probe it with the training set's entity
        rows (:func:`entity_rows`) when the manifest names its ``entity_columns`` and the rows hold every entity key
        and request field the transformer's metadata lists, so probes take the users' path (else feature rows).
    """
    manifest = parse_payload(training_set, name="training_set", required=False)
    status, metadata = http_get_json(f"{endpoint_url.rstrip('/')}/v2/models/{model_name}", timeout=5.0)
    if feature_path and manifest.get("uri") and manifest.get("entity_columns"):
        fields = entity_fields(metadata) if status == 200 else None
        instances = entity_rows(manifest)
        missing = [f for f in fields or [] if not instances or f not in instances[0]]
        if fields and instances and not missing:
            return ProbeRows([], entities=instances)
        log.warning(
            "Probing %s with feature rows, not through the feature path: the transformer needs %s and the training "
            "set lacks %s.",
            model_name,
            fields,
            missing,
        )
    if manifest.get("uri") and manifest.get("feature_columns"):
        from mlops_provider.storage import read_parquet

        columns = list(manifest["feature_columns"])
        categorical = frozenset(manifest.get("categorical_columns") or []) & set(columns)
        sample = read_parquet(manifest["uri"], columns=columns).head(20)
        sample = sample.astype({c: "float64" for c in columns if c not in categorical}).astype(object)
        is_text = [c in categorical for c in columns]
        # A missing number stays NaN (as in the FP32 tensor); a missing category is a null string.
        rows = [
            [None if text and (v is None or v != v) else v for v, text in zip(row, is_text, strict=True)]
            for row in sample.values.tolist()
        ]
        return ProbeRows(rows, tuple(columns), categorical)
    inputs = metadata.get("inputs") if status == 200 and isinstance(metadata, dict) else None
    if isinstance(inputs, list) and len(inputs) > 1 and all(len(i.get("shape") or []) == 1 for i in inputs):
        # The column form (a model with categoricals): synthetic numbers, its text features missing.
        names = tuple(str(i["name"]) for i in inputs)
        text = frozenset(str(i["name"]) for i in inputs if i.get("datatype") == "BYTES")
        synthetic: list[list[Any]] = [
            [None if c in text else _synthetic(i, j) for j, c in enumerate(names)] for i in range(10)
        ]
        return ProbeRows(synthetic, names, text)
    width = None
    if status == 200 and isinstance(metadata, dict):
        try:
            width = int(metadata["inputs"][0]["shape"][-1])
        except (KeyError, IndexError, TypeError, ValueError):
            width = None
    width = width if width and width > 0 else int(n_features or 0)
    if not width:
        raise RolloutFailedError(
            f"Cannot build smoke requests: {endpoint_url} did not report the model's input shape (HTTP {status}: "
            f"{str(metadata)[:200]}) and no training_set was given.",
            reason="MetadataUnavailable",
        )
    return ProbeRows([[_synthetic(i, j) for j in range(width)] for i in range(10)])


def _synthetic(row: int, column: int) -> float:
    """Deterministic, varied values within the usual range of scaled features."""
    return ((row * 7 + column * 3) % 11) / 10.0


def in_range(value: float, prediction_range: tuple[float, float]) -> bool:
    """Whether ``value`` is finite and within ``prediction_range``."""
    return math.isfinite(value) and prediction_range[0] <= value <= prediction_range[1]


def smoke_check(
    endpoint_url: str,
    model_name: str,
    rows: ProbeRows | Sequence[Sequence[float]],
    *,
    requests: int = 10,
    max_error_rate: float = 0.0,
    max_latency_ms: float = 500.0,
    prediction_range: tuple[float, float] = (0.0, 1.0),
    timeout: float = 10.0,
    expected_version: str | None = None,
) -> dict:
    """Send ``requests`` single-row V2 requests and judge error rate, p99 latency and prediction sanity.

    Sane: one finite value within ``prediction_range`` per row, or, from a multiclass model (``output-0`` of shape
    ``[1, classes]``), probabilities that sum to one.

    :param expected_version: the model version that must answer (the V2 response's ``model_version``); a response
        from any other version, or one that does not say, fails the check: a canary URL that falls back to the
        main route, or a stale revision, must not pass for the new version.
    """
    probes = rows if isinstance(rows, ProbeRows) else ProbeRows([list(r) for r in rows])
    url = probes.url(endpoint_url, model_name)
    latencies: list[float] = []
    errors: list[str] = []
    insane: list[list[float]] = []
    predictions: list[float] = []
    wrong_versions: list[str] = []
    for i in range(requests):
        started = time.perf_counter()
        status, body = post_json(url, probes.request(i), timeout)
        latencies.append((time.perf_counter() - started) * 1000)
        if status != 200:
            errors.append(f"HTTP {status or 'error'}: {str(body)[:200]}")
            continue
        try:
            if probes.entities:  # V1: predictions (multiclass: labels, with their probabilities)
                multiclass_v1 = "probabilities" in body
                values = [float(v) for v in (body["probabilities"][0] if multiclass_v1 else body["predictions"])]
                shape = [1, len(values)] if multiclass_v1 else [len(values)]
            else:
                output = body["outputs"][0]
                values = [float(v) for v in output["data"]]
                shape = list(output.get("shape") or [len(values)])
        except (KeyError, IndexError, TypeError, ValueError):
            errors.append(f"malformed response {str(body)[:200]}")
            continue
        if len(shape) == 2 and shape[0] == 1 and shape[1] > 1:
            # A multiclass model: one probability per class, summing to one.
            sane = len(values) == shape[1] and all(in_range(v, (0.0, 1.0)) for v in values)
            if not sane or abs(sum(values) - 1.0) > 1e-3:
                insane.append(values)
            predictions.append(max(values) if values else 0.0)
        else:
            if len(values) != 1 or not all(in_range(v, prediction_range) for v in values):
                insane.append(values)
            predictions.extend(values)
        if expected_version is not None and str(body.get("model_version")) != str(expected_version):
            wrong_versions.append(str(body.get("model_version")))
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, math.ceil(0.99 * len(latencies)) - 1)] if latencies else float("inf")
    error_rate = len(errors) / max(1, requests)
    failures = []
    if error_rate > max_error_rate:
        failures.append(f"error rate {error_rate:.0%} > {max_error_rate:.0%} ({errors[0]})")
    if p99 > max_latency_ms:
        failures.append(f"p99 latency {p99:.1f} ms > {max_latency_ms:.0f} ms")
    if wrong_versions:
        failures.append(
            f"{len(wrong_versions)} response(s) answered by model version {sorted(set(wrong_versions))}, "
            f"not {expected_version}"
        )
    if insane:
        failures.append(
            f"{len(insane)} prediction(s) outside {list(prediction_range)} or not one per row: {insane[:3]}"
        )
    return {
        "ok": not failures,
        "failures": failures,
        "error_rate": error_rate,
        "p99_ms": round(p99, 2),
        "p50_ms": round(latencies[len(latencies) // 2], 2) if latencies else None,
        "requests": requests,
        "mean_prediction": sum(predictions) / len(predictions) if predictions else None,
    }


def run_analysis(
    endpoint_url: str,
    model_name: str,
    config: AnalysisConfig,
    *,
    deadline: float,
    label: str,
    training_set: dict | str | None = None,
    progress_deadline: float | None = None,
    expected_version: str | None = None,
    feature_path: bool = False,
) -> dict[str, Any]:
    """Run checks every ``config.interval`` until ``config.iterations`` pass or ``config.failure_threshold`` fail.

    :param deadline: UNIX time after which the analysis fails with ``ProgressDeadlineExceeded``.
    :param label: what is analysed, for logs and messages (e.g. ``canary at 10% (version 7)``).
    :param progress_deadline: the rollout's deadline in seconds, for the message.
    :param expected_version: the model version every response must come from (see :func:`smoke_check`).
    :param feature_path: probe through the Feast transformer with entity rows (see :func:`sample_rows`).
    :return: ``{"passed", "checks", "reason", "message"}``; ``reason`` is ``Passed``, ``AnalysisFailed`` or
        ``ProgressDeadlineExceeded``.
    """
    checks: list[dict] = []
    passed = failed = 0
    rows: ProbeRows | None = None
    check: dict[str, Any]
    while True:
        if time.time() > deadline:
            limit = f" of {progress_deadline:.0f} s" if progress_deadline is not None else ""
            return {
                "passed": False,
                "checks": checks,
                "reason": "ProgressDeadlineExceeded",
                "message": f"The rollout passed its progress deadline{limit} during the analysis of {label}.",
            }
        try:
            if rows is None:
                rows = sample_rows(endpoint_url, model_name, training_set, config.n_features, feature_path=feature_path)
        except RolloutFailedError as exc:  # an unreachable endpoint is a failed check, as in Flagger
            check = {"ok": False, "failures": [str(exc)], "error_rate": 1.0, "p99_ms": None, "requests": 0}
        else:
            check = smoke_check(
                endpoint_url,
                model_name,
                rows,
                requests=config.requests,
                max_error_rate=config.max_error_rate,
                max_latency_ms=config.max_latency_ms,
                prediction_range=config.prediction_range,
                timeout=config.timeout,
                expected_version=expected_version,
            )
        checks.append(check)
        if check["ok"]:
            passed += 1
            log.info("Analysis of %s: check %d passed (p99 %s ms)", label, len(checks), check["p99_ms"])
        else:
            failed += 1
            log.warning("Analysis of %s: check %d failed: %s", label, len(checks), "; ".join(check["failures"]))
        if failed >= config.failure_threshold:
            return {
                "passed": False,
                "checks": checks,
                "reason": "AnalysisFailed",
                "message": f"{failed} failed check(s) of {label} reached the failure threshold "
                f"{config.failure_threshold}: {'; '.join(check['failures'] or ['see checks'])}",
            }
        if passed >= config.iterations:
            return {"passed": True, "checks": checks, "reason": "Passed", "message": f"{passed} check(s) passed."}
        time.sleep(config.interval)
