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
    "xgboost": {
        "objective": "binary:logistic",
        "tree_method": "hist",
        "device": "auto",
        "max_depth": 6,
        "eta": 0.1,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "min_child_weight": 1.0,
        "max_bin": 256,
        "eval_metric": ["logloss", "aucpr"],
        "seed": 42,
    },
    "n_estimators": 400,
    "early_stopping_rounds": 30,
    "scale_pos_weight": "auto",
    "split": {"validation_fraction": 0.15, "holdout_fraction": 0.15},
    "threshold": {"policy": "max_f1", "value": 0.5, "min_precision": 0.5},
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
    return _merge(DEFAULT_PARAMS, loaded)


def check_params_digest(path: str | Path, expected: str) -> None:
    """Refuse a params file whose SHA-256 differs from the DAG bundle's (the image was built from other params)."""
    digest = file_sha256(path) or ""
    if digest != expected:
        raise TrainingError(
            f"params file {path} in this image (sha256 {digest[:12]}) differs from the DAG bundle's "
            f"({expected[:12]}): rebuild and push the trainer image"
        )
