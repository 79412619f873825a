"""Fit the booster on the device that is there (CUDA when a GPU is visible), choose the threshold, score it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from include.trainer.data import ParquetTrainPart, TrainingData, external_memory_matrix
from include.trainer.params import DEFAULT_EVAL_METRICS, TrainingError, check_task
from mlops_provider.lineage import (
    BINARY,
    BOOSTER_CATEGORIES_ATTR,
    BOOSTER_CLASSES_ATTR,
    BOOSTER_TASK_ATTR,
    MULTICLASS,
    TASK_OBJECTIVES,
)
from mlops_provider.training.evaluation import EvaluationError, booster_predict, choose_threshold, task_metrics


def gpu_visible(env: Mapping[str, str] | None = None) -> bool:
    """True when XGBoost was built with CUDA and at least one NVIDIA GPU is visible to this process."""
    env = os.environ if env is None else env
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1", "none", "NoDevFiles"):
        return False
    try:
        import xgboost

        if not xgboost.build_info().get("USE_CUDA"):
            return False
    except Exception:  # a broken install is a CPU install
        return False
    gpus = Path("/proc/driver/nvidia/gpus")
    if gpus.is_dir() and any(gpus.iterdir()):
        return True
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, check=False)
            return out.returncode == 0 and "GPU" in out.stdout
        except (OSError, subprocess.SubprocessError):
            return False
    return False


def training_plan(params: Mapping[str, Any], *, gpu: bool) -> dict[str, Any]:
    """Resolve the booster parameters and the matrix type for the device.

    ``device: auto`` picks ``cuda`` when ``gpu`` is True. On CUDA the data goes into a ``QuantileDMatrix``
    (quantised once, on the device, so the hist sketch is not rebuilt per round); on CPU a ``DMatrix``.
    """
    task = check_task(params)
    booster = dict(params["xgboost"])
    booster["objective"] = booster.get("objective") or TASK_OBJECTIVES[task]
    booster["eval_metric"] = booster.get("eval_metric") or list(DEFAULT_EVAL_METRICS[task])
    requested = str(booster.get("device", "auto"))
    if requested == "auto":
        device = "cuda" if gpu else "cpu"
    elif requested.startswith("cuda") and not gpu:
        raise TrainingError(f"params ask for device={requested!r} but no GPU is visible to the trainer")
    else:
        device = requested
    booster["device"] = device
    booster["tree_method"] = booster.get("tree_method") or "hist"
    return {
        "task": task,
        "booster": booster,
        "device": device,
        "matrix": "QuantileDMatrix" if device.startswith("cuda") else "DMatrix",
    }


@dataclass(frozen=True)
class FitResult:
    """The early-stopped booster (set to predict on CPU), its threshold (binary) and its scores.

    ``holdout_proba`` is what the model predicts on the holdout: positive-class probabilities (binary),
    ``[n, classes]`` probabilities (multiclass) or values (regression).
    """

    booster: Any
    booster_params: dict[str, Any]
    threshold: float | None
    validation_metrics: dict[str, float]
    holdout_metrics: dict[str, float]
    holdout_proba: Any
    evals_result: dict[str, Any]
    best_iteration: int
    train_seconds: float


def booster_params(
    params: Mapping[str, Any], plan: Mapping[str, Any], y_train: Any, classes: list[Any] | None = None
) -> dict[str, Any]:
    """The plan's booster parameters with ``scale_pos_weight`` (binary; ``auto``: negatives / positives) or
    ``num_class`` (multiclass: the number of ``classes``) resolved."""
    resolved = dict(plan["booster"])
    task = plan.get("task", BINARY)
    if task == MULTICLASS:
        if not classes:
            raise TrainingError("a multiclass model needs the label's classes")
        resolved["num_class"] = len(classes)
    if task != BINARY:
        return resolved
    if params.get("scale_pos_weight") == "auto":
        resolved["scale_pos_weight"] = float((y_train == 0).sum() / max((y_train == 1).sum(), 1))
    elif params.get("scale_pos_weight") is not None:
        resolved["scale_pos_weight"] = float(params["scale_pos_weight"])
    return resolved


def matrices(plan: Mapping[str, Any], data: TrainingData, booster: Mapping[str, Any]) -> tuple[Any, Any]:
    """The train and validation matrices of the plan's type (``QuantileDMatrix`` binned with ``max_bin``).

    A streamed train part (:class:`~include.trainer.data.ParquetTrainPart`) becomes an ``ExtMemQuantileDMatrix``
    on either device, the validation part a ``QuantileDMatrix`` binned like it.
    """
    import xgboost as xgb

    # Categorical features are pandas categories with the frozen categories: XGBoost's native categoricals.
    categorical = bool(data.categories)
    if isinstance(data.x_train, ParquetTrainPart):  # streamed: quantised batch by batch, pages cached on disk
        dtrain = external_memory_matrix(
            data.x_train, max_bin=booster.get("max_bin", 256), enable_categorical=categorical
        )
        dval = xgb.QuantileDMatrix(
            data.x_val, label=data.y_val, feature_names=data.features, ref=dtrain, enable_categorical=categorical
        )
        return dtrain, dval
    if plan["matrix"] == "QuantileDMatrix":
        dtrain = xgb.QuantileDMatrix(
            data.x_train,
            label=data.y_train,
            feature_names=data.features,
            max_bin=booster.get("max_bin", 256),
            enable_categorical=categorical,
        )
        dval = xgb.QuantileDMatrix(
            data.x_val, label=data.y_val, feature_names=data.features, ref=dtrain, enable_categorical=categorical
        )
    else:
        dtrain = xgb.DMatrix(
            data.x_train, label=data.y_train, feature_names=data.features, enable_categorical=categorical
        )
        dval = xgb.DMatrix(data.x_val, label=data.y_val, feature_names=data.features, enable_categorical=categorical)
    return dtrain, dval


def train_booster(
    params: Mapping[str, Any],
    booster: Mapping[str, Any],
    dtrain: Any,
    dval: Any,
    callbacks: list[Any] | None = None,
) -> tuple[Any, dict[str, Any], int]:
    """Boost with early stopping on ``dval``; return the booster, its evaluation log and its best iteration.

    Only ``dval`` is evaluated each round: early stopping and the logged curve read it, and scoring the train part
    every round (``aucpr`` sorts all its rows) added over half again to the boosting's CPU time on 1M rows.
    """
    import xgboost as xgb

    evals_result: dict[str, Any] = {}
    trained = xgb.train(
        dict(booster),
        dtrain,
        num_boost_round=int(params["n_estimators"]),
        evals=[(dval, "validation")],
        early_stopping_rounds=int(params["early_stopping_rounds"]) if params.get("early_stopping_rounds") else None,
        evals_result=evals_result,
        verbose_eval=False,
        callbacks=callbacks,
    )
    best_iteration = int(getattr(trained, "best_iteration", trained.num_boosted_rounds() - 1))
    return trained, evals_result, best_iteration


def fit(params: Mapping[str, Any], plan: Mapping[str, Any], data: TrainingData) -> FitResult:
    """Train with early stopping on the validation part, then score validation and holdout."""
    resolved = booster_params(params, plan, data.y_train, data.classes)
    dtrain, dval = matrices(plan, data, resolved)
    started = time.perf_counter()
    booster, evals_result, best_iteration = train_booster(params, resolved, dtrain, dval)
    train_seconds = time.perf_counter() - started
    return score_fitted(params, plan, data, booster, resolved, evals_result, best_iteration, train_seconds)


def score_fitted(
    params: Mapping[str, Any],
    plan: Mapping[str, Any],
    data: TrainingData,
    booster: Any,
    resolved: dict[str, Any],
    evals_result: dict[str, Any],
    best_iteration: int,
    train_seconds: float,
) -> FitResult:
    """Cut the trained booster to its early-stopped trees, stamp the model file, then score validation and
    holdout (every engine, in memory or on a Dask cluster, finishes through here)."""
    booster = booster[: best_iteration + 1]  # the registered model holds exactly the early-stopped trees
    booster.set_param({"device": "cpu"})  # served on CPU; inference must not expect a GPU
    booster.feature_names = data.features

    task = plan.get("task", BINARY)
    # The model file carries its task and classes, so the model server and the gate need nothing else.
    booster.set_attr(**{BOOSTER_TASK_ATTR: task})
    if data.classes is not None:
        booster.set_attr(**{BOOSTER_CLASSES_ATTR: json.dumps([_plain(c) for c in data.classes])})
    if data.categories:
        # The category mapping is frozen into the model file: whoever scores it encodes values the same way.
        booster.set_attr(**{BOOSTER_CATEGORIES_ATTR: json.dumps(data.categories, sort_keys=True)})

    # Scored as every other process scores it: values mapped through the booster's frozen categories.
    p_val = booster_predict(booster, data.x_val, data.features)
    p_hold = booster_predict(booster, data.x_hold, data.features)
    threshold = choose_threshold(data.y_val, p_val, params["threshold"]) if task == BINARY else None
    try:
        val_metrics = task_metrics(task, data.y_val, p_val, threshold=threshold or 0.5, what="validation window")
        hold_metrics = task_metrics(task, data.y_hold, p_hold, threshold=threshold or 0.5, what="holdout window")
    except EvaluationError as exc:
        raise TrainingError(str(exc)) from exc
    return FitResult(
        booster=booster,
        booster_params=resolved,
        threshold=threshold,
        validation_metrics=val_metrics,
        holdout_metrics=hold_metrics,
        holdout_proba=p_hold,
        evals_result=evals_result,
        best_iteration=best_iteration,
        train_seconds=train_seconds,
    )


def _plain(value: Any) -> Any:
    """A JSON-friendly class label (NumPy scalars become Python numbers)."""
    return value.item() if hasattr(value, "item") else value
