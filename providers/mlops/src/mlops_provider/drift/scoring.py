"""Score a loaded model on a frame, and the performance metrics the drift policy can watch.

The model comes from :meth:`~mlops_provider.hooks.mlflow.MlflowHook.load_xgboost_model` (the xgboost
flavour only); :func:`model_scorer` turns it into ``score(frame) -> positive-class scores``.
NumPy, xgboost and scikit-learn are imported when a score or metric is computed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

#: ``score(features) -> one positive-class score per row``.
Scorer = Callable[["pd.DataFrame"], "np.ndarray"]

#: Metrics :func:`performance_metric` computes (the drift policy's ``performance_metric``).
METRICS = ("roc_auc", "average_precision", "accuracy")


def model_scorer(model: Any) -> Scorer:
    """Return a scorer for an xgboost model: the sklearn wrapper's ``predict_proba`` or a ``Booster``."""
    import numpy as np

    def score(frame: pd.DataFrame) -> np.ndarray:
        if hasattr(model, "predict_proba"):
            return np.asarray(model.predict_proba(frame))[:, -1]
        if type(model).__name__ == "Booster":
            import xgboost

            return np.asarray(model.predict(xgboost.DMatrix(frame)))
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


def performance_metric(name: str, labels: Any, scores: Any) -> float | None:
    """Return ``name`` (one of :data:`METRICS`) of ``scores`` against ``labels``; None with a single class."""
    from sklearn import metrics

    if len(set(labels)) < 2:
        return None
    if name == "roc_auc":
        return float(metrics.roc_auc_score(labels, scores))
    if name == "average_precision":
        return float(metrics.average_precision_score(labels, scores))
    return float(metrics.accuracy_score(labels, (scores >= 0.5).astype(int)))
