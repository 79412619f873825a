"""Time-ordered splits, the metrics of each learning task, threshold policies and per-segment scores.

Shared by the trainer (``include/trainer``, also inside the trainer image, where Airflow is not
installed) and the evaluation gate, so a model is scored the same way when it is trained and when it
is gated. Imports only numpy/pandas/scikit-learn, inside the functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops_provider.lineage import BINARY, MULTICLASS, REGRESSION, TASKS

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

METRIC_DIRECTIONS: dict[str, str] = {
    "roc_auc": "max",
    "pr_auc": "max",
    "log_loss": "min",
    "brier": "min",
    "ece": "min",
    "precision": "max",
    "recall": "max",
    "f1": "max",
    "macro_f1": "max",
    "accuracy": "max",
    "mlogloss": "min",
    "rmse": "min",
    "mae": "min",
    "r2": "max",
}
"""Whether a larger (``max``) or a smaller (``min``) value of each metric is better."""

TASK_METRICS: dict[str, tuple[str, ...]] = {
    BINARY: ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "precision", "recall", "f1"),
    MULTICLASS: ("macro_f1", "accuracy", "mlogloss"),
    REGRESSION: ("rmse", "mae", "r2"),
}
"""The metrics each task is scored on (and the only ones the gate's criteria may name for it)."""


class EvaluationError(ValueError):
    """The data cannot be scored as asked (e.g. a window without both classes)."""


@dataclass(frozen=True)
class TimeSplit:
    """Row frames of a time-ordered split and the timestamps that separate them."""

    train: pd.DataFrame
    validation: pd.DataFrame
    holdout: pd.DataFrame
    validation_start: Any
    holdout_start: Any


def time_split(
    df: pd.DataFrame, timestamp_column: str, *, validation_fraction: float, holdout_fraction: float
) -> TimeSplit:
    """Split ``df`` by time: oldest rows train, then validation (early stopping), the latest rows the holdout.

    Boundaries are timestamps, so rows sharing a timestamp never straddle two parts; the holdout is
    the latest time slice of the training set, the window the gate scores candidate and champion on.
    """
    import pandas as pd

    if timestamp_column not in df.columns:
        raise EvaluationError(f"timestamp column {timestamp_column!r} is not in the training set")
    if not 0 < holdout_fraction < 1 or not 0 < validation_fraction < 1 or validation_fraction + holdout_fraction >= 1:
        raise EvaluationError(
            f"validation_fraction={validation_fraction} and holdout_fraction={holdout_fraction} must be in (0, 1) "
            "and leave rows for training"
        )
    ts = pd.to_datetime(df[timestamp_column], utc=True)
    ordered = ts.sort_values(kind="stable")
    n = len(ordered)
    if n < 10:
        raise EvaluationError(f"the training set has {n} rows; at least 10 are needed for a time-ordered split")
    holdout_start = ordered.iloc[int(n * (1 - holdout_fraction))]
    validation_start = ordered.iloc[int(n * (1 - holdout_fraction - validation_fraction))]
    if ts.is_monotonic_increasing:  # a snapshot is written sorted by time: the parts are row ranges, views not copies
        validation_row, holdout_row = ts.searchsorted(validation_start), ts.searchsorted(holdout_start)
        train, validation, holdout = (
            df.iloc[:validation_row],
            df.iloc[validation_row:holdout_row],
            df.iloc[holdout_row:],
        )
    else:
        train = df[ts < validation_start]
        validation = df[(ts >= validation_start) & (ts < holdout_start)]
        holdout = df[ts >= holdout_start]
    for name, part in (("train", train), ("validation", validation), ("holdout", holdout)):
        if part.empty:
            raise EvaluationError(
                f"the {name} part of the time split is empty (too many rows share a timestamp); "
                "use a longer window or other fractions"
            )
    return TimeSplit(train, validation, holdout, validation_start, holdout_start)


def holdout_window(df: pd.DataFrame, timestamp_column: str, holdout_fraction: float) -> pd.DataFrame:
    """Return the latest ``holdout_fraction`` time slice of ``df`` (the same boundary as :func:`time_split`)."""
    import pandas as pd

    ts = pd.to_datetime(df[timestamp_column], utc=True)
    ordered = ts.sort_values(kind="stable")
    start = ordered.iloc[int(len(ordered) * (1 - holdout_fraction))]
    return df[ts >= start]


def _check_labels(y: np.ndarray, what: str) -> None:
    import numpy as np

    classes = np.unique(y)
    if len(classes) < 2:
        raise EvaluationError(
            f"the {what} has only label value(s) {classes.tolist()}: both classes are needed to score a model; "
            "use a longer window"
        )


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error over ``bins`` equal-width probability bins."""
    import numpy as np

    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = idx == b
        if mask.any():
            ece += mask.mean() * abs(float(y[mask].mean()) - float(p[mask].mean()))
    return float(ece)


def binary_metrics(y: Any, p: Any, threshold: float, *, what: str = "evaluation window") -> dict[str, float]:
    """ROC-AUC, PR-AUC, log loss, Brier, ECE and precision/recall/F1 at ``threshold``."""
    import numpy as np
    from sklearn import metrics as skm

    y = np.asarray(y).astype(int)
    p = np.clip(np.asarray(p, dtype=float), 1e-7, 1 - 1e-7)
    _check_labels(y, what)
    pred = (p >= threshold).astype(int)
    return {
        "roc_auc": float(skm.roc_auc_score(y, p)),
        "pr_auc": float(skm.average_precision_score(y, p)),
        "log_loss": float(skm.log_loss(y, p, labels=[0, 1])),
        "brier": float(skm.brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p),
        "precision": float(skm.precision_score(y, pred, zero_division=0)),
        "recall": float(skm.recall_score(y, pred, zero_division=0)),
        "f1": float(skm.f1_score(y, pred, zero_division=0)),
        "threshold": float(threshold),
        "rows": float(len(y)),
        "positive_rate": float(y.mean()),
    }


def multiclass_metrics(y: Any, proba: Any, *, what: str = "evaluation window") -> dict[str, float]:
    """Macro-F1, accuracy and multi-class log loss of ``proba`` (``[n, k]``) against class indexes ``y`` (0..k-1)."""
    import numpy as np
    from sklearn import metrics as skm

    y = np.asarray(y).astype(int)
    proba = np.asarray(proba, dtype=float)
    if proba.ndim != 2 or proba.shape[1] < 2:
        raise EvaluationError(f"multiclass scores of the {what} must be [n, classes]; got shape {list(proba.shape)}")
    if len(y) == 0:
        raise EvaluationError(f"the {what} has no rows to score")
    k = proba.shape[1]
    if y.min() < 0 or y.max() >= k:
        raise EvaluationError(f"the {what} has labels outside the model's {k} classes")
    proba = np.clip(proba, 1e-7, 1.0)
    proba = proba / proba.sum(axis=1, keepdims=True)
    pred = proba.argmax(axis=1)
    return {
        "macro_f1": float(skm.f1_score(y, pred, average="macro", labels=list(range(k)), zero_division=0)),
        "accuracy": float(skm.accuracy_score(y, pred)),
        "mlogloss": float(skm.log_loss(y, proba, labels=list(range(k)))),
        "rows": float(len(y)),
        "classes": float(k),
    }


def regression_metrics(y: Any, pred: Any, *, what: str = "evaluation window") -> dict[str, float]:
    """RMSE, MAE and R² of ``pred`` against ``y`` (R² needs at least two distinct label values)."""
    import numpy as np
    from sklearn import metrics as skm

    y = np.asarray(y, dtype=float)
    pred = np.asarray(pred, dtype=float).reshape(-1)
    if len(y) < 2 or float(np.ptp(y)) == 0.0:
        raise EvaluationError(f"the {what} needs at least two distinct label values to score a regression model")
    return {
        "rmse": float(np.sqrt(skm.mean_squared_error(y, pred))),
        "mae": float(skm.mean_absolute_error(y, pred)),
        "r2": float(skm.r2_score(y, pred)),
        "rows": float(len(y)),
    }


def task_metrics(
    task: str, y: Any, p: Any, *, threshold: float = 0.5, what: str = "evaluation window"
) -> dict[str, float]:
    """Score predictions ``p`` of a ``task`` model with that task's metrics (:data:`TASK_METRICS`).

    ``p`` holds positive-class probabilities (binary, cut at ``threshold``), ``[n, k]`` class probabilities
    (multiclass, ``y`` the class indexes) or values (regression).
    """
    if task == BINARY:
        return binary_metrics(y, p, threshold, what=what)
    if task == MULTICLASS:
        return multiclass_metrics(y, p, what=what)
    if task == REGRESSION:
        return regression_metrics(y, p, what=what)
    raise EvaluationError(f"unknown task {task!r}; use one of {list(TASKS)}")


def choose_threshold(y: Any, p: Any, policy: dict[str, Any]) -> float:
    """Pick the decision threshold on validation data.

    Policies: ``fixed`` (``value``), ``max_f1`` (the threshold with the best F1), ``min_precision``
    (the lowest threshold whose precision is at least ``min_precision``, i.e. the best recall under a
    precision floor; falls back to ``max_f1`` when the floor is never reached).
    """
    import numpy as np
    from sklearn.metrics import precision_recall_curve

    name = str(policy.get("policy", "max_f1"))
    if name == "fixed":
        return float(policy.get("value", 0.5))
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=float)
    _check_labels(y, "validation window")
    precision, recall, thresholds = precision_recall_curve(y, p)
    precision, recall = precision[:-1], recall[:-1]
    if name == "min_precision":
        floor = float(policy.get("min_precision", 0.5))
        ok = np.flatnonzero(precision >= floor)
        if ok.size:
            return float(thresholds[ok[0]])
        name = "max_f1"
    if name != "max_f1":
        raise EvaluationError(f"unknown threshold policy {name!r}; use fixed, max_f1 or min_precision")
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    return float(thresholds[int(np.argmax(f1))])


def segment_metrics(
    df: pd.DataFrame,
    y: Any,
    p: Any,
    segment_column: str,
    threshold: float,
    *,
    min_rows: int = 1,
    task: str = BINARY,
) -> dict[str, dict[str, float]]:
    """Score every value of ``segment_column`` with at least ``min_rows`` rows that the task can score.

    Binary segments need both classes, regression segments two distinct label values; multiclass segments are
    scored whatever classes they hold.
    """
    import numpy as np

    y = np.asarray(y) if task == MULTICLASS else np.asarray(y).astype(float if task == REGRESSION else int)
    p = np.asarray(p, dtype=float)
    values = df[segment_column].astype(str).to_numpy()
    out: dict[str, dict[str, float]] = {}
    for value in sorted(set(values)):
        mask = values == value
        if mask.sum() < min_rows or (task != MULTICLASS and len(np.unique(y[mask])) < 2):
            continue
        out[value] = task_metrics(task, y[mask], p[mask], threshold=threshold, what=f"segment {segment_column}={value}")
    return out


def categorical_columns(df: pd.DataFrame, feature_columns: list[str]) -> list[str]:
    """Return the feature columns the model treats as categorical: every string, object or ``category`` column.

    Booleans and numbers stay numeric. The model learns these with XGBoost's native categoricals.
    """
    import pandas as pd

    out = []
    for column in feature_columns:
        if column not in df.columns:
            continue
        dtype = df[column].dtype
        if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
            continue
        if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(dtype):
            out.append(column)
        elif pd.api.types.is_string_dtype(dtype):
            out.append(column)
    return out


def _as_text(series: pd.Series) -> pd.Series:
    """The values as text, nulls kept as nulls (categories are compared as strings everywhere)."""
    import pandas as pd

    return series.astype(object).map(lambda v: None if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v))


def category_mapping(df: pd.DataFrame, columns: list[str]) -> dict[str, list[str]]:
    """Return the frozen mapping ``{column: sorted distinct non-null values}``; code ``i`` is ``categories[i]``."""
    return {column: sorted(set(_as_text(df[column]).dropna())) for column in columns}


def categorical_series(series: pd.Series, categories: list[str]) -> pd.Series:
    """``series`` as a pandas ``category`` column with exactly ``categories``: unseen values and nulls are NaN."""
    import pandas as pd

    return pd.Series(
        pd.Categorical(_as_text(series), categories=list(categories)), index=series.index, name=series.name
    )


def feature_matrix(
    df: pd.DataFrame, feature_columns: list[str], categories: dict[str, list[str]] | None = None
) -> pd.DataFrame:
    """Return the feature columns in the given order, numeric ones as float32 and categorical ones as categories.

    Booleans become 0/1; each column of ``categories`` becomes a pandas ``category`` column with the frozen
    categories (unseen values and nulls: NaN). A non-numeric column that ``categories`` does not name is refused.
    """
    import pandas as pd

    categories = categories or {}
    missing = [c for c in feature_columns if c not in df.columns]
    if missing:
        raise EvaluationError(f"feature columns {missing} are not in the training set")
    columns: dict[str, pd.Series] = {}
    bad = []
    for column in feature_columns:
        series = df[column]
        if column in categories:
            columns[column] = categorical_series(series, categories[column])
        elif pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
            columns[column] = series.astype("float32", copy=False)
        else:
            bad.append(f"{column} ({series.dtype})")
    if bad:
        raise EvaluationError(
            f"feature columns {bad} are not numeric and the model has no categories for them: train a model that "
            "treats them as categorical (string columns of the training set are) or encode them as numbers"
        )
    # One copy into consolidated blocks (the float32 columns become a single 2-D block XGBoost reads at once).
    return pd.DataFrame(columns, index=df.index, columns=feature_columns)


def encode_features(
    df: pd.DataFrame, feature_columns: list[str], categories: dict[str, list[str]] | None = None
) -> np.ndarray:
    """Return the float32 matrix a booster scores: numbers as they are, categorical columns as their codes.

    The code of a value is its index in the frozen ``categories`` of its column; an unseen value or a null is NaN
    (missing). The model server encodes requests the same way (``kserve/mlops_serving/predictor.py``).
    """
    import numpy as np

    frame = feature_matrix(df, feature_columns, categories)
    columns = []
    for column in feature_columns:
        series = frame[column]
        if column in (categories or {}):
            codes = series.cat.codes.to_numpy().astype(np.float32)
            codes[codes < 0] = np.nan
            columns.append(codes)
        else:
            columns.append(series.to_numpy(dtype=np.float32))
    if not columns:
        return np.empty((len(frame), 0), dtype=np.float32)
    return np.column_stack(columns).astype(np.float32, copy=False)


def booster_predict(booster: Any, df: pd.DataFrame, feature_columns: list[str] | None = None) -> np.ndarray:
    """Score ``df`` with an XGBoost booster, its categorical features mapped through its frozen categories.

    The trainer (validation, holdout), the gate and the drift check all score through here, so a model sees
    the same codes there as in the model server. ``feature_columns`` defaults to the booster's feature names.
    """
    from mlops_provider.lineage import booster_categories

    features = list(feature_columns or booster.feature_names or [])
    matrix = encode_features(df, features, booster_categories(booster))
    return booster.inplace_predict(matrix, validate_features=False)
