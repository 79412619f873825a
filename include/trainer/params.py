"""The trainer's parameters: defaults, the YAML file that overrides them, and the digest check against image drift."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from mlops_provider.training.launch import file_sha256


class TrainingError(RuntimeError):
    """Training cannot proceed; the message says what to change."""


DEFAULT_PARAMS: dict[str, Any] = {
    # binary | multiclass | regression: the source of truth for the model's task. It picks the XGBoost objective
    # (``objective`` may be left out; if given it must belong to the task), the default ``eval_metric``, the
    # reported metrics, and is recorded as the ``mlops.task`` tag on the run and the registered version.
    "task": "binary",
    "xgboost": {
        "tree_method": "hist",
        "device": "auto",
        "max_depth": 6,
        "eta": 0.1,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "min_child_weight": 1.0,
        "max_bin": 256,
        "seed": 42,
    },
    "n_estimators": 400,
    "early_stopping_rounds": 30,
    "scale_pos_weight": "auto",  # binary only
    "split": {"validation_fraction": 0.15, "holdout_fraction": 0.15},
    "threshold": {"policy": "max_f1", "value": 0.5, "min_precision": 0.5},  # binary only
}

#: ``eval_metric`` of each task when the params file names none (early stopping watches the last one).
DEFAULT_EVAL_METRICS: dict[str, list[str]] = {
    "binary": ["logloss", "aucpr"],
    "multiclass": ["merror", "mlogloss"],
    "regression": ["mae", "rmse"],
}
#: XGBoost evaluation metrics that only make sense for one task (a params file mixing them is refused).
TASK_EVAL_METRICS: dict[str, set[str]] = {
    "binary": {"logloss", "auc", "aucpr", "error", "pre"},
    "multiclass": {"mlogloss", "merror"},
    "regression": {"rmse", "mae", "mape", "rmsle", "mphe"},
}


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_params(path: str | Path | None) -> dict[str, Any]:
    """Return the defaults deep-merged with the YAML parameter file."""
    if not path:
        return copy.deepcopy(DEFAULT_PARAMS)
    loaded = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(loaded, Mapping):
        raise TrainingError(f"params file {path} must hold a YAML mapping")
    unknown = set(loaded) - set(DEFAULT_PARAMS)
    if unknown:
        raise TrainingError(f"params file {path} has unknown keys {sorted(unknown)}; known: {sorted(DEFAULT_PARAMS)}")
    params = _merge(DEFAULT_PARAMS, loaded)
    check_task(params, str(path))
    return params


def check_task(params: Mapping[str, Any], source: str = "params") -> str:
    """Return the params' ``task`` after checking that the XGBoost objective and eval metrics belong to it."""
    from mlops_provider.lineage import TASK_OBJECTIVES, TASKS, task_of_objective

    task = str(params.get("task") or "binary")
    if task not in TASKS:
        raise TrainingError(f"{source}: task {task!r} is not one of {list(TASKS)}")
    booster = params.get("xgboost") or {}
    objective = booster.get("objective")
    if objective and task_of_objective(str(objective)) != task:
        raise TrainingError(
            f"{source}: xgboost.objective {objective!r} does not fit task {task!r} (use {TASK_OBJECTIVES[task]!r} "
            "or leave objective out)"
        )
    metrics = booster.get("eval_metric") or []
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    foreign = sorted(
        {m for m in metrics for other, known in TASK_EVAL_METRICS.items() if other != task and m.split("@")[0] in known}
    )
    if foreign:
        raise TrainingError(
            f"{source}: xgboost.eval_metric {foreign} belong to another task than {task!r}; "
            f"use e.g. {DEFAULT_EVAL_METRICS[task]}"
        )
    return task


def check_params_digest(path: str | Path, expected: str) -> None:
    """Refuse a params file whose SHA-256 differs from the DAG bundle's (the image was built from other params)."""
    digest = file_sha256(path) or ""
    if digest != expected:
        raise TrainingError(
            f"params file {path} in this image (sha256 {digest[:12]}) differs from the DAG bundle's "
            f"({expected[:12]}): rebuild and push the trainer image"
        )
