"""Delayed labels: join labels that arrive after the predictions to the prediction log, and score the live model.

Pure functions, frames in and frames out; :class:`~mlops_provider.operators.labels.LabelFeedbackOperator` reads
the zones, writes the results and emits the drift asset event.

Labels land in ``<data_root>/labels/<dataset>/dt=<arrival day>/`` (Parquet, CSV or JSON lines) and are joined in
one of two ways (:data:`JOIN_KINDS`):

- ``request_id``: each label names the answer it belongs to: ``request_id`` (the id every answer and the prediction
  log carry) and ``request_row`` (the row's position in its request; a label without one is row 0's, which is the
  whole request for single-row requests);
- ``entity_time``: each label names its entity keys and event time; a prediction takes the label of its entity
  whose event time is nearest its ``served_at``, within ``tolerance``. The prediction log must carry the entity
  keys, which it does for keys that are model inputs.

**Duplicate labels** (two labels for one key) are not an error: the last one wins (latest arrival day, then
latest row in file order), so a correction sent later replaces the earlier label; they are counted. Predictions
without a label are left out of the metrics and counted (``unlabeled``); labels without a prediction in the
looked-back window (too late, or for another model's requests) are counted (``unmatched_labels``).

The live metric is :func:`mlops_provider.drift.scoring.performance_metric` (sklearn's, the definitions
``training.evaluation.task_metrics`` used for the holdout score), so the drop compares like with like.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from mlops_provider.exceptions import LabelJoinError
from mlops_provider.lineage import MULTICLASS

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

#: Zones: where labels land (``<data_root>/labels/<dataset>/``), and the labeled rows and live metrics
#: (``<data_root>/live_performance/<model>/dt=<prediction day>/``).
LABELS_ZONE, LIVE_PERFORMANCE_ZONE = "labels", "live_performance"
#: Files of a ``live_performance`` day: the labeled rows, then the metrics (written last: the day's manifest).
LABELED_ROWS_FILE, METRICS_FILE = "labeled.parquet", "metrics.json"
#: How labels find their predictions.
JOIN_KINDS = ("request_id", "entity_time")
#: Columns of the prediction log (``kserve/mlops_serving/prediction_log.py``).
REQUEST_ID, REQUEST_ROW, SERVED_AT, MODEL_VERSION = "request_id", "request_row", "served_at", "model_version"
PREDICTION_COLUMN, CLASS_PROBABILITY_PREFIX = "prediction", "prediction_class_"
#: Columns the join adds: the day a label arrived (its partition) and the UTC day of the prediction.
ARRIVED_ON, PREDICTION_DAY = "label_arrived_on", "prediction_day"
_LABEL_INDEX = "_label_index"


@dataclass(frozen=True)
class LabelJoin:
    """Labeled predictions and what did not join.

    :ivar rows: the prediction log's rows that found a label, with the label, ``label_arrived_on`` and
        ``prediction_day`` added.
    :ivar predictions: prediction rows looked at.
    :ivar unlabeled: prediction rows without a label (left out of the metrics).
    :ivar labels: label rows read.
    :ivar unmatched_labels: labels that found no prediction (too late for the window, or not this model's).
    :ivar duplicate_labels: labels replaced by a later label for the same key.
    """

    rows: pd.DataFrame
    predictions: int
    unlabeled: int
    labels: int
    unmatched_labels: int
    duplicate_labels: int

    def counts(self) -> dict[str, int]:
        """The counts, for summaries and logs."""
        return {k: v for k, v in asdict(self).items() if k != "rows"} | {"labeled": len(self.rows)}


def join_labels(
    predictions: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    label: str,
    join: str = "request_id",
    entity_columns: Sequence[str] = (),
    timestamp_column: str | None = None,
    tolerance: timedelta = timedelta(minutes=5),
) -> LabelJoin:
    """Join ``labels`` to the prediction log rows ``predictions``; see the module docstring for the semantics.

    :param predictions: prediction log rows (``served_at``, ``model_version``, ``prediction``, ``request_id``, ...).
    :param labels: label rows, in arrival order, with ``label_arrived_on`` when known.
    :param label: the label column.
    :param join: ``request_id`` or ``entity_time``.
    :param entity_columns: the entity keys (``entity_time``).
    :param timestamp_column: the labels' event-time column (``entity_time``).
    :param tolerance: largest gap between a label's event time and the prediction's ``served_at`` (``entity_time``).
    :raises LabelJoinError: a column the join needs is missing.
    :raises ValueError: an unknown join kind.
    """
    import pandas as pd

    if join not in JOIN_KINDS:
        raise ValueError(f"join must be one of {', '.join(JOIN_KINDS)}, got {join!r}")
    if join == "request_id":
        keys = [REQUEST_ID, REQUEST_ROW]
        needed_in_labels = [REQUEST_ID, label]
        needed_in_log = [REQUEST_ID, REQUEST_ROW, SERVED_AT]
    else:
        if not entity_columns or not timestamp_column:
            raise ValueError("an entity_time join needs entity_columns and timestamp_column")
        keys = [*entity_columns, timestamp_column]
        needed_in_labels = [*keys, label]
        needed_in_log = [*entity_columns, SERVED_AT]
    _require(labels, needed_in_labels, "labels", join)
    _require(predictions, needed_in_log, "prediction log", join)

    labels = labels.reset_index(drop=True)
    if join == "request_id":
        labels = labels.assign(
            **{
                REQUEST_ID: labels[REQUEST_ID].astype(str),
                REQUEST_ROW: labels[REQUEST_ROW].fillna(0).astype("int64") if REQUEST_ROW in labels else 0,
            }
        )
    else:
        labels = labels.assign(**{str(timestamp_column): _utc(labels[timestamp_column])})
    # The last label of a key wins: a correction sent later replaces the earlier one.
    latest = labels.drop_duplicates(subset=keys, keep="last")
    latest = latest[latest[label].notna()]
    carried = [label, *([ARRIVED_ON] if ARRIVED_ON in latest.columns else [])]
    latest = latest[[*keys, *carried]].assign(**{_LABEL_INDEX: range(len(latest))})

    log = predictions.reset_index(drop=True)
    log = log.drop(columns=[c for c in carried if c in log.columns])
    log = log.assign(**{SERVED_AT: _utc(log[SERVED_AT])})
    if join == "request_id":
        log = log.assign(**{REQUEST_ID: log[REQUEST_ID].astype(str), REQUEST_ROW: log[REQUEST_ROW].astype("int64")})
        joined = log.merge(latest, on=keys, how="left")
    else:
        assert timestamp_column is not None
        order = log.sort_values(SERVED_AT, kind="stable")
        joined = pd.merge_asof(
            order,
            latest.sort_values(timestamp_column, kind="stable"),
            left_on=SERVED_AT,
            right_on=timestamp_column,
            by=list(entity_columns),
            direction="nearest",
            tolerance=pd.Timedelta(tolerance),
        ).sort_index()
    matched = joined[_LABEL_INDEX].notna()
    rows = joined[matched].drop(columns=[_LABEL_INDEX]).reset_index(drop=True)
    rows[PREDICTION_DAY] = rows[SERVED_AT].dt.strftime("%Y-%m-%d")
    used = set(joined.loc[matched, _LABEL_INDEX].astype(int))
    return LabelJoin(
        rows=rows,
        predictions=len(log),
        unlabeled=int((~matched).sum()),
        labels=len(labels),
        unmatched_labels=len(latest) - len(used),
        duplicate_labels=len(labels) - len(labels.drop_duplicates(subset=keys)),
    )


def _require(frame: pd.DataFrame, columns: list[str], where: str, join: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        hint = (
            " The prediction log carries only the model's inputs: an entity_time join needs entity keys that are "
            "model inputs; join by request_id (the id every answer carries) otherwise."
            if where == "prediction log" and join == "entity_time"
            else ""
        )
        raise LabelJoinError(
            f"The {where} lack the column(s) {missing} that a {join} join needs (it has {sorted(frame.columns)}).{hint}",
            missing=missing,
            where=where,
        )


def _utc(series: pd.Series) -> pd.Series:
    """Timestamps as UTC nanoseconds (naive values are UTC), so both sides of a join compare."""
    import pandas as pd

    return pd.to_datetime(series, utc=True).astype("datetime64[ns, UTC]")


def prediction_scores(rows: pd.DataFrame, task: str) -> np.ndarray:
    """The logged scores of ``rows``: ``[n, classes]`` probabilities for multiclass, else the ``prediction`` column."""
    if task == MULTICLASS:
        columns = sorted(
            (c for c in rows.columns if c.startswith(CLASS_PROBABILITY_PREFIX)),
            key=lambda c: int(c.removeprefix(CLASS_PROBABILITY_PREFIX)),
        )
        if not columns:
            raise LabelJoinError(
                "The prediction log of a multiclass model lacks its per-class probabilities "
                f"({CLASS_PROBABILITY_PREFIX}<k>); the live metric cannot be computed.",
                missing=[f"{CLASS_PROBABILITY_PREFIX}0"],
                where="prediction log",
            )
        return rows[columns].to_numpy(dtype=float)
    return rows[PREDICTION_COLUMN].to_numpy(dtype=float)


def live_metric(rows: pd.DataFrame, *, label: str, task: str, metric: str, classes: list | None = None) -> float | None:
    """``metric`` of the logged scores of ``rows`` against their labels (None: undefined, e.g. one label value)."""
    from mlops_provider.drift.scoring import performance_metric

    if rows.empty:
        return None
    labels = rows[label].to_numpy()
    if task != MULTICLASS:
        labels = labels.astype(float)
        if metric != "r2":
            labels = labels.astype(int)
    return performance_metric(metric, labels, prediction_scores(rows, task), classes)


def daily_live_performance(
    predictions: pd.DataFrame,
    joined: LabelJoin,
    *,
    label: str,
    task: str,
    metric: str,
    classes: list | None = None,
) -> list[dict[str, Any]]:
    """One record per prediction day and model version: the live ``metric``, labeled and unlabeled rows."""
    from mlops_provider.drift.check import round_score

    served = _utc(predictions[SERVED_AT]).dt.strftime("%Y-%m-%d")
    totals = predictions.groupby([served.rename(PREDICTION_DAY), predictions[MODEL_VERSION].astype(str)]).size()
    rows = joined.rows.assign(**{MODEL_VERSION: joined.rows[MODEL_VERSION].astype(str)})
    records = []
    for (day, version), total in totals.items():
        labeled = rows[(rows[PREDICTION_DAY] == day) & (rows[MODEL_VERSION] == version)]
        value = live_metric(labeled, label=label, task=task, metric=metric, classes=classes)
        records.append(
            {
                "day": day,
                "model_version": version,
                "metric": metric,
                "value": round_score(value),
                "labeled_rows": len(labeled),
                "unlabeled_rows": int(total) - len(labeled),
            }
        )
    return records


@dataclass(frozen=True)
class PerformanceDecision:
    """Whether the champion's live performance dropped too far below its holdout score.

    ``status``: ``exceeds`` (drop > ``max_drop``: retrain), ``within``, ``inconclusive`` (fewer than ``min_rows``
    labeled rows, or a metric undefined on them) or ``unavailable`` (no holdout reference, or no ``max_drop``).
    """

    status: str
    reason: str
    model_version: str
    metric: str
    reference: float | None
    live: float | None
    drop: float | None
    labeled_rows: int
    min_rows: int
    max_drop: float | None

    @property
    def exceeds(self) -> bool:
        """Whether the drop exceeds the policy."""
        return self.status == "exceeds"

    def to_dict(self) -> dict[str, Any]:
        """JSON form (scores rounded for people)."""
        from mlops_provider.drift.check import round_score

        out = asdict(self)
        for key in ("reference", "live", "drop"):
            out[key] = round_score(out[key])
        return out


def decide(
    *,
    model_version: str,
    metric: str,
    reference: float | None,
    live: float | None,
    labeled_rows: int,
    min_rows: int,
    max_drop: float | None,
) -> PerformanceDecision:
    """Compare the champion's live ``metric`` with its holdout ``reference`` (see :class:`PerformanceDecision`)."""
    drop = reference - live if reference is not None and live is not None else None
    args = dict(
        model_version=model_version,
        metric=metric,
        reference=reference,
        live=live,
        drop=drop,
        labeled_rows=labeled_rows,
        min_rows=min_rows,
        max_drop=max_drop,
    )
    if reference is None:
        reason = f"version {model_version}'s training run logged no holdout {metric}: no reference to compare with"
        return PerformanceDecision("unavailable", reason, **args)  # type: ignore[arg-type]
    if max_drop is None:
        reason = "the drift policy sets no max_performance_drop"
        return PerformanceDecision("unavailable", reason, **args)  # type: ignore[arg-type]
    if labeled_rows < min_rows:
        reason = f"{labeled_rows} labeled rows of version {model_version}, fewer than the {min_rows} needed"
        return PerformanceDecision("inconclusive", reason, **args)  # type: ignore[arg-type]
    if live is None or drop is None:
        reason = f"live {metric} is undefined on the {labeled_rows} labeled rows (a single label value)"
        return PerformanceDecision("inconclusive", reason, **args)  # type: ignore[arg-type]
    change = f"dropped by {drop:.4f} {'>' if drop > max_drop else '<='} {max_drop:.4f}" if drop > 0 else "did not drop"
    reason = (
        f"live {metric} of version {model_version} {change} from its holdout {reference:.4f} "
        f"({live:.4f} on {labeled_rows} labeled rows)"
    )
    return PerformanceDecision("exceeds" if drop > max_drop else "within", reason, **args)  # type: ignore[arg-type]
