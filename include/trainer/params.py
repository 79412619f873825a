"""The trainer's parameters: defaults, the YAML file that overrides them, and the digest check against image drift."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
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
    # Above this size of the float32 feature matrix (rows x features x 4 bytes, in MiB) the train part is streamed
    # from the snapshot into XGBoost's external-memory ExtMemQuantileDMatrix (bounded memory, slower to train);
    # 0: always read the snapshot whole.
    "external_memory_threshold_mb": 2048,
    "threshold": {"policy": "max_f1", "value": 0.5, "min_precision": 0.5},  # binary only
    # Optional hyperparameter search (Optuna) before the final fit; ``None``: train the ``xgboost`` params as
    # they are. See :class:`SearchConfig` for the keys.
    "search": None,
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
    search_config(params, str(path))
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


# ---------------------------------------------------------------------------------------------- search
#: The validation metric a search optimises when ``search.metric`` is not given: each task's metric that the
#: evaluation gate holds to a floor by default (``DEFAULT_CRITERIA_BY_TASK[task]["min_metrics"]``).
DEFAULT_SEARCH_METRICS: dict[str, str] = {"binary": "roc_auc", "multiclass": "macro_f1", "regression": "r2"}
#: XGBoost parameters a search may not vary: they are chosen by the task, the device or for reproducibility.
UNSEARCHABLE_PARAMS = frozenset({"objective", "eval_metric", "device", "tree_method", "seed", "nthread", "num_class"})
SEARCH_KEYS = frozenset({"trials", "timeout_minutes", "parallelism", "seed", "metric", "pruning", "space"})
PRUNING_KEYS = frozenset({"startup_trials", "warmup_rounds"})


@dataclass(frozen=True)
class SearchSpace:
    """One searched XGBoost parameter: ``int``/``float`` between ``low`` and ``high`` (``log`` scale,
    ``step``), or one of ``choices``."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()


@dataclass(frozen=True)
class SearchConfig:
    """The params file's ``search:`` block.

    ``trials`` and/or ``timeout_minutes`` bound the study (it stops at whichever comes first); ``parallelism``
    trials run at once in the trainer process; ``seed`` seeds the sampler; ``metric`` is the validation metric
    optimised (default :data:`DEFAULT_SEARCH_METRICS`); ``pruning`` (``false`` to turn it off) stops a trial
    whose validation curve is below the median of the earlier trials' after ``warmup_rounds`` boosting rounds,
    once ``startup_trials`` trials have finished; ``space`` maps XGBoost parameters to their ranges.
    """

    space: tuple[SearchSpace, ...]
    metric: str
    direction: str
    trials: int | None = None
    timeout_minutes: float | None = None
    parallelism: int = 1
    seed: int = 0
    pruning: bool = True
    startup_trials: int = 5
    warmup_rounds: int = 10


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TrainingError(f"{where}: expected a whole number >= 1, got {value!r}")
    return value


def _space(name: str, raw: Any, where: str) -> SearchSpace:
    if name in UNSEARCHABLE_PARAMS:
        raise TrainingError(f"{where}: {name!r} cannot be searched (set it under xgboost: instead)")
    if not isinstance(raw, Mapping):
        raise TrainingError(f"{where}: expected {{int: [low, high]}}, {{float: [low, high]}} or {{choice: [...]}}")
    kinds = [k for k in ("int", "float", "choice") if k in raw]
    extra = set(raw) - {"int", "float", "choice", "log", "step"}
    if len(kinds) != 1 or extra:
        raise TrainingError(
            f"{where}: expected exactly one of int, float, choice (plus log, step); got keys {sorted(raw)}"
        )
    kind = kinds[0]
    values = raw[kind]
    if kind == "choice":
        if not isinstance(values, list) or not values:
            raise TrainingError(f"{where}.choice: expected a non-empty list, got {values!r}")
        return SearchSpace(name, kind, choices=tuple(values))
    if (
        not isinstance(values, list)
        or len(values) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        or not values[0] < values[1]
    ):
        raise TrainingError(f"{where}.{kind}: expected [low, high] numbers with low < high, got {values!r}")
    log = bool(raw.get("log", False))
    if log and values[0] <= 0:
        raise TrainingError(f"{where}: a log scale needs low > 0, got {values[0]!r}")
    step = raw.get("step")
    if step is not None and (log or not isinstance(step, int | float) or step <= 0):
        raise TrainingError(f"{where}.step: expected a positive number without log scale, got {step!r}")
    if kind == "int" and not all(isinstance(v, int) for v in values):
        raise TrainingError(f"{where}.int: expected whole numbers, got {values!r}")
    return SearchSpace(name, kind, float(values[0]), float(values[1]), log, None if step is None else float(step))


def search_config(params: Mapping[str, Any], source: str = "params") -> SearchConfig | None:
    """The validated ``search`` block of ``params``, or None when there is none (no search)."""
    from mlops_provider.training.evaluation import METRIC_DIRECTIONS, TASK_METRICS

    raw = params.get("search")
    if raw is None or raw is False:
        return None
    where = f"{source}: search"
    if not isinstance(raw, Mapping):
        raise TrainingError(f"{where}: expected a mapping with trials and/or timeout_minutes and a space")
    unknown = set(raw) - SEARCH_KEYS
    if unknown:
        raise TrainingError(f"{where} has unknown keys {sorted(unknown)}; known: {sorted(SEARCH_KEYS)}")
    trials = None if raw.get("trials") is None else _positive_int(raw["trials"], f"{where}.trials")
    timeout = raw.get("timeout_minutes")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0):
        raise TrainingError(f"{where}.timeout_minutes: expected a positive number, got {timeout!r}")
    if trials is None and timeout is None:
        raise TrainingError(f"{where}: set a budget, trials and/or timeout_minutes")
    space_raw = raw.get("space")
    if not isinstance(space_raw, Mapping) or not space_raw:
        raise TrainingError(f"{where}.space: expected a mapping of XGBoost parameters to ranges, e.g. "
                            "{max_depth: {int: [3, 8]}, eta: {float: [0.02, 0.3], log: true}}")  # fmt: skip
    space = tuple(_space(str(name), spec, f"{where}.space.{name}") for name, spec in space_raw.items())
    task = check_task(params, source)
    metric = str(raw.get("metric") or DEFAULT_SEARCH_METRICS[task])
    if metric not in TASK_METRICS[task]:
        raise TrainingError(f"{where}.metric: {metric!r} is not a {task} metric; use one of {list(TASK_METRICS[task])}")
    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TrainingError(f"{where}.seed: expected a whole number, got {seed!r}")
    pruning = raw.get("pruning", True)
    if isinstance(pruning, Mapping):
        if set(pruning) - PRUNING_KEYS:
            raise TrainingError(
                f"{where}.pruning has unknown keys {sorted(set(pruning) - PRUNING_KEYS)}; known: {sorted(PRUNING_KEYS)}"
            )
        startup = pruning.get("startup_trials", 5)
        warmup = pruning.get("warmup_rounds", 10)
        for key, value in (("startup_trials", startup), ("warmup_rounds", warmup)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise TrainingError(f"{where}.pruning.{key}: expected a whole number >= 0, got {value!r}")
        enabled = True
    elif isinstance(pruning, bool):
        startup, warmup, enabled = 5, 10, pruning
    else:
        raise TrainingError(f"{where}.pruning: expected true, false or {{startup_trials: N, warmup_rounds: N}}")
    return SearchConfig(
        space=space,
        metric=metric,
        direction="maximize" if METRIC_DIRECTIONS[metric] == "max" else "minimize",
        trials=trials,
        timeout_minutes=None if timeout is None else float(timeout),
        parallelism=_positive_int(raw.get("parallelism", 1), f"{where}.parallelism"),
        seed=seed,
        pruning=enabled,
        startup_trials=startup,
        warmup_rounds=warmup,
    )
