"""Fit the booster on the device that is there (CUDA when a GPU is visible), choose the threshold, score it."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from include.trainer.data import TrainingData
from include.trainer.params import TrainingError
from mlops_provider.training.evaluation import EvaluationError, binary_metrics, choose_threshold


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
    booster = dict(params["xgboost"])
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
        "booster": booster,
        "device": device,
        "matrix": "QuantileDMatrix" if device.startswith("cuda") else "DMatrix",
    }


@dataclass(frozen=True)
class FitResult:
    """The early-stopped booster (set to predict on CPU), its threshold and its scores."""

    booster: Any
    booster_params: dict[str, Any]
    threshold: float
    validation_metrics: dict[str, float]
    holdout_metrics: dict[str, float]
    holdout_proba: Any
    evals_result: dict[str, Any]
    best_iteration: int
    train_seconds: float


def booster_params(params: Mapping[str, Any], plan: Mapping[str, Any], y_train: Any) -> dict[str, Any]:
    """The plan's booster parameters with ``scale_pos_weight`` resolved (``auto``: negatives / positives)."""
    resolved = dict(plan["booster"])
    if params.get("scale_pos_weight") == "auto":
        resolved["scale_pos_weight"] = float((y_train == 0).sum() / max((y_train == 1).sum(), 1))
    elif params.get("scale_pos_weight") is not None:
        resolved["scale_pos_weight"] = float(params["scale_pos_weight"])
    return resolved


def fit(params: Mapping[str, Any], plan: Mapping[str, Any], data: TrainingData) -> FitResult:
    """Train with early stopping on the validation part, then score validation and holdout."""
    import xgboost as xgb

    resolved = booster_params(params, plan, data.y_train)
    if plan["matrix"] == "QuantileDMatrix":
        dtrain = xgb.QuantileDMatrix(
            data.x_train, label=data.y_train, feature_names=data.features, max_bin=resolved.get("max_bin", 256)
        )
        dval = xgb.QuantileDMatrix(data.x_val, label=data.y_val, feature_names=data.features, ref=dtrain)
    else:
        dtrain = xgb.DMatrix(data.x_train, label=data.y_train, feature_names=data.features)
        dval = xgb.DMatrix(data.x_val, label=data.y_val, feature_names=data.features)

    evals_result: dict[str, Any] = {}
    started = time.perf_counter()
    booster = xgb.train(
        resolved,
        dtrain,
        num_boost_round=int(params["n_estimators"]),
        evals=[(dtrain, "train"), (dval, "validation")],
        early_stopping_rounds=int(params["early_stopping_rounds"]) if params.get("early_stopping_rounds") else None,
        evals_result=evals_result,
        verbose_eval=False,
    )
    train_seconds = time.perf_counter() - started
    best_iteration = int(getattr(booster, "best_iteration", booster.num_boosted_rounds() - 1))
    booster = booster[: best_iteration + 1]  # the registered model holds exactly the early-stopped trees
    booster.set_param({"device": "cpu"})  # served on CPU; inference must not expect a GPU
    booster.feature_names = data.features

    p_val = booster.inplace_predict(data.x_val.to_numpy())
    p_hold = booster.inplace_predict(data.x_hold.to_numpy())
    threshold = choose_threshold(data.y_val, p_val, params["threshold"])
    val_metrics = binary_metrics(data.y_val, p_val, threshold, what="validation window")
    try:
        hold_metrics = binary_metrics(data.y_hold, p_hold, threshold, what="holdout window")
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
