"""The drift check as a pure function: frames and rules in, a typed verdict out.

:func:`check_drift` compares the current window with the reference (the champion's training set) and
applies the drift policy. It reads and writes nothing: the operator finds the data, the lineage and
the model, and writes the report, the summary and the MLflow run.

Features are checked on the current window's rows when it has them; features it lacks (aggregates,
on-demand features that could not be rebuilt) are checked on the endpoint's request log, which holds
exactly the model's inputs. Given a ``scorer``, the check also compares the model's logged predictions
with its scores on the reference (prediction drift) and, with labels, its performance.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from mlops_provider.drift.engine import ColumnDrift, DriftConfig, compute_drift

if TYPE_CHECKING:
    import pandas as pd

    from mlops_provider.drift.policy import DriftPolicy
    from mlops_provider.drift.scoring import Scorer
    from mlops_provider.payloads import DriftVerdict

log = logging.getLogger(__name__)

#: The column of the request log that holds the model's score.
PREDICTION_COLUMN = "prediction"
#: Rows of the reference the model is scored on (enough for stable distributions, bounded in time).
MAX_SCORED_REFERENCE_ROWS = 200_000
#: Digits people read: shares and rates in summaries, logs and payloads.
SHARE_DIGITS = 3
#: Significant digits of test scores (p-values can be tiny, so not a fixed number of decimals).
SCORE_SIGNIFICANT_DIGITS = 4


def round_share(value: float) -> float:
    """Round a share or rate for people (``0.333``, not ``0.3333333333333333``)."""
    return round(float(value), SHARE_DIGITS)


def round_score(value: float | None) -> float | None:
    """Round a test score or metric to a few significant digits, keeping tiny p-values readable."""
    return None if value is None else float(f"{float(value):.{SCORE_SIGNIFICANT_DIGITS}g}")


def column_summary(column: ColumnDrift) -> dict[str, Any]:
    """JSON form of one column's verdict, with its score and threshold rounded for people."""
    out = asdict(column)
    out["score"] = round_score(column.score)
    out["threshold"] = round_score(column.threshold)
    return out


class FeatureSources(NamedTuple):
    """Where each feature is checked: the current window, the request log, or nowhere."""

    current: list[str]
    prediction_log: list[str]
    unchecked: list[str]


def split_features(features: list[str], current: pd.DataFrame, predictions: pd.DataFrame | None) -> FeatureSources:
    """Assign each feature to the frame it is checked on (the current window first, else the request log)."""
    log_columns = set(predictions.columns) if predictions is not None else set()
    in_current = [c for c in features if c in current.columns]
    in_log = [c for c in features if c not in current.columns and c in log_columns]
    unchecked = [c for c in features if c not in in_current and c not in in_log]
    return FeatureSources(in_current, in_log, unchecked)


@dataclass(frozen=True)
class DriftCheckResult:
    """The verdict of one drift check.

    ``drift_share`` is exact (the policy compares it unrounded); :meth:`to_payload` and :meth:`summary`
    round it for people. ``drift_detected`` means "exceeds the policy": ``reasons`` says why.
    """

    features: tuple[ColumnDrift, ...]
    sources: FeatureSources
    drift_share: float
    dataset_drift: bool
    reasons: tuple[str, ...]
    reference_rows: int
    current_rows: int
    prediction_rows: int
    seconds: float
    target_drift: ColumnDrift | None = None
    prediction_drift: dict[str, Any] | None = None
    performance: dict[str, Any] | None = None
    config: DriftConfig = field(default_factory=DriftConfig)

    @property
    def drift_detected(self) -> bool:
        """Whether the verdict exceeds the drift policy."""
        return bool(self.reasons)

    @property
    def drifted_features(self) -> list[str]:
        """Drifted features, in feature order."""
        return [c.column for c in self.features if c.drift_detected]

    @property
    def checked_features(self) -> list[str]:
        """Every feature the verdict covers (what the report must show)."""
        return [c.column for c in self.features]

    @property
    def performance_drop(self) -> float | None:
        """How much the performance metric dropped from the reference to the current window, if checked."""
        return (self.performance or {}).get("drop")

    def to_payload(self) -> DriftVerdict:
        """The verdict part of the drift check's XCom payload (rounded for people)."""
        drop = self.performance_drop
        return {
            "drift_detected": self.drift_detected,
            "drift_share": round_share(self.drift_share),
            "drifted_features": self.drifted_features,
            "reasons": list(self.reasons),
            "dataset_drift": self.dataset_drift,
            "target_drifted": bool(self.target_drift and self.target_drift.drift_detected),
            "prediction_drifted": bool(self.prediction_drift and self.prediction_drift.get("drift_detected")),
            "performance_drop": round_score(drop) if drop is not None else None,
        }

    def summary(self) -> dict[str, Any]:
        """The verdict part of the JSON summary: the payload plus every column's test, score and threshold."""
        return {
            **self.to_payload(),
            "drift_tests": asdict(self.config),
            "features": [column_summary(c) for c in self.features],
            "features_from_prediction_log": list(self.sources.prediction_log),
            "unchecked_features": list(self.sources.unchecked),
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "prediction_rows": self.prediction_rows,
            "target_drift": column_summary(self.target_drift) if self.target_drift else None,
            "prediction_drift": self.prediction_drift,
            "performance": {**self.performance, "drop": round_score(self.performance_drop)}
            if self.performance
            else None,
            "decision_seconds": round(self.seconds, 3),
        }


def check_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    features: list[str],
    config: DriftConfig,
    policy: DriftPolicy,
    predictions: pd.DataFrame | None = None,
    label: str | None = None,
    scorer: Scorer | None = None,
    holdout_metrics: dict[str, float] | None = None,
) -> DriftCheckResult:
    """Check ``current`` against ``reference`` and apply ``policy``.

    :param reference: the reference rows (the champion's training set), with every feature (and the label).
    :param current: the current window's rows.
    :param features: the model's features.
    :param config: per-feature tests and thresholds.
    :param policy: when the verdict calls for retraining.
    :param predictions: the endpoint's request log for the window (model inputs and ``prediction``).
    :param label: the label column; when both frames have it, its drift (target drift) and, with a
        ``scorer``, the model's performance are checked.
    :param scorer: scores the model on a frame of features (and carries its ``task`` and ``classes``); errors
        it raises make prediction drift and performance "unavailable" (with the reason) instead of failing the check.
    :param holdout_metrics: the metrics the champion's training run logged on its holdout window: the reference
        of the performance drop (without the watched metric, performance is "unavailable").
    :raises ValueError: when no feature is in ``current`` or ``predictions``.
    """
    sources = split_features(features, current, predictions)
    if not sources.current and not sources.prediction_log:
        raise ValueError(f"None of the features {features} is in the current data or the prediction log.")
    results = []
    if sources.current:
        results.append(compute_drift(reference, current, columns=sources.current, config=config))
    if sources.prediction_log:
        assert predictions is not None
        results.append(compute_drift(reference, predictions, columns=sources.prediction_log, config=config))
    columns = tuple(c for r in results for c in r.columns)
    drifted = [c.column for c in columns if c.drift_detected]
    share = len(drifted) / len(columns)

    target_drift = None
    if label and label in reference.columns and label in current.columns:
        target_drift = compute_drift(reference, current, columns=[label], config=config).columns[0]

    prediction_drift, performance = _model_checks(
        reference,
        current,
        predictions if predictions is not None else current.iloc[0:0],
        features,
        label,
        policy,
        config,
        scorer,
        holdout_metrics or {},
    )
    reasons = policy.evaluate(
        drift_share=share,
        drifted_features=drifted,
        performance_drop=(performance or {}).get("drop"),
        prediction_drifted=(prediction_drift or {}).get("drift_detected"),
        performance_metric=(performance or {}).get("metric"),
    )
    return DriftCheckResult(
        features=columns,
        sources=sources,
        drift_share=share,
        dataset_drift=bool(share >= config.drift_share),
        reasons=tuple(reasons),
        reference_rows=len(reference),
        current_rows=len(current),
        prediction_rows=len(predictions) if predictions is not None else 0,
        seconds=sum(r.seconds for r in results),
        target_drift=target_drift,
        prediction_drift=prediction_drift,
        performance=performance,
        config=config,
    )


def _model_checks(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    predictions: pd.DataFrame,
    features: list[str],
    label: str | None,
    policy: DriftPolicy,
    config: DriftConfig,
    scorer: Scorer | None,
    holdout_metrics: dict[str, float],
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Prediction drift (logged predictions vs the model's scores on the reference) and performance."""
    from mlops_provider.drift.scoring import holdout_reference, performance_metric, prediction_frames

    has_logged = not predictions.empty and PREDICTION_COLUMN in predictions.columns
    scorable_current = all(c in current.columns for c in features)
    has_labels = bool(label and label in current.columns and label in reference.columns and scorable_current)
    if not has_logged and not has_labels:
        return None, None
    try:
        if scorer is None:
            raise ValueError("no model to score")
        reference_sample = reference.sample(n=min(len(reference), MAX_SCORED_REFERENCE_ROWS), random_state=0)
        reference_scores = scorer(reference_sample[features])
    except Exception as err:  # the verdict on features stands; say why these checks are missing
        reason = f"could not score the champion ({type(err).__name__}: {err})"
        log.warning("Prediction drift and performance not checked: %s", reason)
        unavailable = {"status": "unavailable", "reason": reason}
        return (unavailable if has_logged else None), (unavailable if has_labels else None)

    prediction_drift = None
    if has_logged:
        method = config.per_column_method.get(PREDICTION_COLUMN)
        threshold = config.per_column_threshold.get(PREDICTION_COLUMN)
        reference_frame, current_frame = prediction_frames(reference_scores, predictions)
        columns = list(reference_frame.columns)
        result = compute_drift(
            reference_frame,
            current_frame,
            config=DriftConfig(
                per_column_method=dict.fromkeys(columns, method) if method else {},
                per_column_threshold=dict.fromkeys(columns, threshold) if threshold is not None else {},
            ),
        )
        if columns == [PREDICTION_COLUMN]:  # binary probability, regression value, or a class index
            prediction_drift = {"status": "checked", **column_summary(result.columns[0])}
        else:  # multiclass: one verdict per class probability; the predictions drifted if any class did
            per_class = [column_summary(column) for column in result.columns]
            prediction_drift = {
                "status": "checked",
                "column": PREDICTION_COLUMN,
                "drift_detected": any(c["drift_detected"] for c in per_class),
                "per_class": per_class,
            }
    performance: dict[str, Any] | None = None
    if has_labels:
        assert label is not None
        metric, reference = holdout_reference(getattr(scorer, "task", None), holdout_metrics, policy.performance_metric)
        if reference is None:
            performance = {
                "status": "unavailable",
                "metric": metric,
                "reason": f"the champion's training run logged no holdout {metric} to measure a drop from",
            }
        else:
            current_scores = scorer(current[features])
            cur_value = performance_metric(
                metric, current[label].to_numpy(), current_scores, getattr(scorer, "classes", None)
            )
            performance = {
                "status": "checked" if cur_value is not None else "undefined",
                "metric": metric,
                "reference": round_score(reference),
                "reference_source": "holdout",
                "current": round_score(cur_value),
                # The drop is computed unrounded: the policy compares it with max_performance_drop.
                "drop": (reference - cur_value) if cur_value is not None else None,
            }
    return prediction_drift, performance
