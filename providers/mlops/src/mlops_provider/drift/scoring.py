"""Score a loaded model on a frame, and the performance metrics the drift policy can watch.

The model comes from :meth:`~mlops_provider.hooks.mlflow.MlflowHook.load_xgboost_model` (the xgboost
flavour only); :func:`model_scorer` turns it into ``score(frame) -> predictions``: positive-class
probabilities (binary), values (regression) or ``[n, classes]`` probabilities (multiclass).
:func:`prediction_frames` lines the reference's scores up with the request log per task.
NumPy, xgboost and scikit-learn are imported when a score or metric is computed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

#: ``score(features) -> predictions``: one score per row, or one probability per class and row (multiclass).
Scorer = Callable[["pd.DataFrame"], "np.ndarray"]

#: Metrics :func:`performance_metric` computes (the drift policy's ``performance_metric``): the first three for
#: binary classifiers, ``r2`` for regression models.
METRICS = ("roc_auc", "average_precision", "accuracy", "r2")

#: The request log's columns (see ``kserve/mlops_serving/prediction_log.py``): the score, and for a multiclass
#: model the arg-max class index in ``prediction`` plus one probability column per class.
PREDICTION_COLUMN = "prediction"
CLASS_PROBABILITY_PREFIX = "prediction_class_"


def model_scorer(model: Any) -> Scorer:
    """Return a scorer for an xgboost model: the sklearn wrapper's ``predict_proba`` or a ``Booster``."""
    import numpy as np

    def score(frame: pd.DataFrame) -> np.ndarray:
        if hasattr(model, "predict_proba"):
            proba = np.asarray(model.predict_proba(frame))
            return proba if proba.shape[1] > 2 else proba[:, -1]
        if type(model).__name__ == "Booster":
            from mlops_provider.training.evaluation import booster_predict

            # The model's frozen categories encode its categorical features, as in training and serving.
            return np.asarray(booster_predict(model, frame, list(model.feature_names or frame.columns)))
        return np.asarray(model.predict(frame)).reshape(len(frame), -1)[:, -1]

    return score


def lazy_scorer(load: Callable[[], Any]) -> Scorer:
    """Return a scorer that calls ``load()`` for the model on its first use only.

    The drift check scores the model only when it has logged predictions or labels to compare; a lazy
    scorer keeps the download out of checks that need none, and a load error surfaces where scoring is
    attempted (the check reports it instead of failing).
    """
    loaded: list[Scorer] = []

    def score(frame: pd.DataFrame) -> np.ndarray:
        if not loaded:
            loaded.append(model_scorer(load()))
        return loaded[0](frame)

    return score


def prediction_frames(reference_scores: Any, predictions: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return ``(reference, current)`` frames of the prediction columns to compare, per task.

    Binary and regression: the one ``prediction`` column (a probability or a value, compared as numbers).
    Multiclass (``[n, classes]`` reference scores): one ``prediction_class_<k>`` column per class, so each class's
    probability distribution is compared; a log without those columns compares the predicted class index.
    """
    import numpy as np
    import pandas as pd

    scores = np.asarray(reference_scores, dtype=float)
    if scores.ndim == 2 and scores.shape[1] > 1:
        names = [f"{CLASS_PROBABILITY_PREFIX}{k}" for k in range(scores.shape[1])]
        if all(name in predictions.columns for name in names):
            reference = pd.DataFrame(scores, columns=names)
            return reference, predictions[names].astype(float).reset_index(drop=True)
        scores = scores.argmax(axis=1).astype(float)
    reference = pd.DataFrame({PREDICTION_COLUMN: scores.reshape(-1)})
    current = pd.DataFrame({PREDICTION_COLUMN: predictions[PREDICTION_COLUMN].astype(float).to_numpy()})
    return reference, current


def performance_metric(name: str, labels: Any, scores: Any) -> float | None:
    """Return ``name`` (one of :data:`METRICS`) of ``scores`` against ``labels``.

    None when it is undefined: a single label value, a classification metric of a regression model's values
    (or ``r2`` of a classifier's), or multiclass probabilities (their labels need the model's class order).
    """
    import numpy as np
    from sklearn import metrics

    scores = np.asarray(scores)
    if len(set(labels)) < 2 or scores.ndim == 2:
        return None
    if name == "r2":
        return float(metrics.r2_score(np.asarray(labels, dtype=float), scores))
    if set(np.unique(labels).tolist()) - {0, 1}:  # not 0/1 labels: not a binary classifier's
        return None
    if name == "roc_auc":
        return float(metrics.roc_auc_score(labels, scores))
    if name == "average_precision":
        return float(metrics.average_precision_score(labels, scores))
    return float(metrics.accuracy_score(labels, (scores >= 0.5).astype(int)))
