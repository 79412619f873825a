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

#: ``score(features) -> predictions``: one score per row, or one probability per class and row (multiclass). A scorer
#: carries the model's ``task`` (``binary``, ``multiclass``, ``regression``) and ``classes`` as attributes.
Scorer = Callable[["pd.DataFrame"], "np.ndarray"]

#: Metrics :func:`performance_metric` computes (the drift policy's ``performance_metric``): ``roc_auc`` and
#: ``accuracy`` for classifiers (one-vs-rest macro ROC AUC and arg-max accuracy for multiclass),
#: ``average_precision`` for binary ones, ``r2`` for regression models.
METRICS = ("roc_auc", "average_precision", "accuracy", "r2")

#: The metric watched when the policy names none: per task of the model.
DEFAULT_METRIC = {"binary": "roc_auc", "multiclass": "accuracy", "regression": "r2"}

#: Name under which the trainer logs each metric of the holdout window to the training run (the reference a
#: performance drop is measured from; ``training.evaluation.task_metrics`` computes them, with the same sklearn
#: definitions as :func:`performance_metric`). ``accuracy`` is logged for multiclass models only.
HOLDOUT_METRIC = {"roc_auc": "roc_auc", "average_precision": "pr_auc", "accuracy": "accuracy", "r2": "r2"}

#: The request log's columns (see ``kserve/mlops_serving/prediction_log.py``): the score, and for a multiclass
#: model the arg-max class index in ``prediction`` plus one probability column per class.
PREDICTION_COLUMN = "prediction"
CLASS_PROBABILITY_PREFIX = "prediction_class_"


def holdout_reference(
    task: str | None, holdout_metrics: dict[str, float], metric: str | None = None
) -> tuple[str, float | None]:
    """``(metric, reference)``: the watched metric (``metric``, else the task's) and the holdout value logged for it.

    ``task`` is the model's own (the scorer's ``task``, the version's ``mlops.task`` tag), never a guess from its
    scores. The reference is what the training run logged on its holdout window (None when it logged none):
    the performance a drop is measured from.
    """
    if metric is None and task not in DEFAULT_METRIC:
        raise ValueError(f"unknown model task {task!r}; expected one of {', '.join(DEFAULT_METRIC)}")
    metric = metric or DEFAULT_METRIC[str(task)]
    value = holdout_metrics.get(HOLDOUT_METRIC[metric])
    return metric, None if value is None else float(value)


def model_classes(model: Any) -> list | None:
    """The class labels of a multiclass model in the order of its probabilities (None: not multiclass, unknown)."""
    from mlops_provider.lineage import MULTICLASS, booster_task

    booster = model.get_booster() if hasattr(model, "get_booster") else model
    task, classes = booster_task(booster)
    return classes if task == MULTICLASS else None


def model_scorer(model: Any) -> Scorer:
    """Return a scorer for an xgboost model: the sklearn wrapper's ``predict_proba`` or a ``Booster``.

    The scorer carries the model's ``task`` (from the model file, :func:`~mlops_provider.lineage.booster_task`)
    and ``classes`` (:func:`model_classes`, what multiclass labels are compared by).
    """
    import numpy as np

    from mlops_provider.lineage import booster_task

    def score(frame: pd.DataFrame) -> np.ndarray:
        if hasattr(model, "predict_proba"):
            proba = np.asarray(model.predict_proba(frame))
            return proba if proba.shape[1] > 2 else proba[:, -1]
        if type(model).__name__ == "Booster":
            from mlops_provider.training.evaluation import booster_predict

            # The model's frozen categories encode its categorical features, as in training and serving.
            return np.asarray(booster_predict(model, frame, list(model.feature_names or frame.columns)))
        return np.asarray(model.predict(frame)).reshape(len(frame), -1)[:, -1]

    score.task = booster_task(model.get_booster() if hasattr(model, "get_booster") else model)[0]  # type: ignore[attr-defined]
    score.classes = model_classes(model)  # type: ignore[attr-defined]
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
            score.task = getattr(loaded[0], "task", None)  # type: ignore[attr-defined]
            score.classes = getattr(loaded[0], "classes", None)  # type: ignore[attr-defined]
        return loaded[0](frame)

    score.task = None  # type: ignore[attr-defined]
    score.classes = None  # type: ignore[attr-defined]
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


def performance_metric(name: str, labels: Any, scores: Any, classes: list | None = None) -> float | None:
    """Return ``name`` (one of :data:`METRICS`) of ``scores`` against ``labels``.

    Multiclass scores (``[n, classes]``) are compared with the labels through ``classes`` (the model's class
    labels in probability order, default ``0..k-1``): ``accuracy`` of the arg-max (a label the model does not
    know counts as wrong) and one-vs-rest macro ``roc_auc`` (over the known labels).
    None when it is undefined: a single label value, a classification metric of a regression model's values,
    ``r2`` of a classifier's, or ``average_precision`` of a multiclass model.
    """
    import numpy as np
    from sklearn import metrics

    scores = np.asarray(scores)
    if len(set(labels)) < 2:
        return None
    if scores.ndim == 2:
        return _multiclass_metric(name, labels, scores, classes)
    if name == "r2":
        return float(metrics.r2_score(np.asarray(labels, dtype=float), scores))
    if set(np.unique(labels).tolist()) - {0, 1}:  # not 0/1 labels: not a binary classifier's
        return None
    if name == "roc_auc":
        return float(metrics.roc_auc_score(labels, scores))
    if name == "average_precision":
        return float(metrics.average_precision_score(labels, scores))
    return float(metrics.accuracy_score(labels, (scores >= 0.5).astype(int)))


def _multiclass_metric(name: str, labels: Any, proba: Any, classes: list | None) -> float | None:
    import numpy as np
    from sklearn import metrics

    k = proba.shape[1]
    index = {str(c): i for i, c in enumerate(classes if classes is not None else range(k))}
    y = np.array([index.get(str(v), -1) for v in labels])
    if name == "accuracy":
        return float(np.mean(proba.argmax(axis=1) == y))
    known = y >= 0
    if name != "roc_auc" or len(set(y[known].tolist())) < 2:
        return None
    present = sorted(set(y[known].tolist()))
    # Scores of the classes present, renormalised: sklearn's one-vs-rest AUC needs rows that sum to one.
    sub = np.clip(proba[known][:, present], 1e-12, None)
    sub = sub / sub.sum(axis=1, keepdims=True)
    if len(present) == 2:
        return float(metrics.roc_auc_score(y[known] == present[1], sub[:, 1]))
    return float(metrics.roc_auc_score(y[known], sub, multi_class="ovr", average="macro", labels=present))
