"""Hyperparameter search: an Optuna study over the ``xgboost`` params, run before the final fit.

The study runs inside the trainer process, so the local, Kubernetes and Vertex AI backends search alike;
``parallelism`` trials run at once in threads, each with its share of ``nthread`` and its own matrices.
Every trial is a nested MLflow run of the training run (``mlflow.parentRunId``) that trains on the train
part with early stopping on validation and is scored on the validation part only: the holdout stays unseen
until the gate. A trial whose per-round validation curve falls behind the earlier trials' is pruned
(:class:`PruningCallback`). The caller then trains the final model with :attr:`SearchOutcome.best_params`
in the parent run; that run is what gets registered and gated.

Determinism: the sampler is seeded with ``search.seed`` and every trial's booster keeps the params' ``seed``.
With ``parallelism: 1`` and a ``trials`` budget, the same data and params give the same trials and the same
best params. With ``parallelism`` above 1 the threads share the sampler, so which configurations are tried
depends on which trials finished first and the best params can differ between runs (each trial stays
reproducible from its logged params). A ``timeout_minutes`` budget makes the number of trials depend on the
machine's speed.

Retries: trials carry the attempt's key in ``SEARCH_KEY_TAG`` (never ``IDEMPOTENCY_TAG``: a trial registers
nothing). A retried attempt whose earlier start finished the training run reuses it without searching again;
one whose earlier start died mid-search marks that start's trials still ``RUNNING`` as ``FAILED`` and searches
afresh under a new parent run.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import xgboost as xgb

from include.trainer.data import TrainingData
from include.trainer.fit import booster_params, matrices, train_booster
from include.trainer.params import SearchConfig, SearchSpace, TrainingError
from mlops_provider import lineage
from mlops_provider.training.evaluation import EvaluationError, choose_threshold, task_metrics
from mlops_provider.training.registry import runs_with_key

log = logging.getLogger("mlops.trainer")

#: XGBoost evaluation metrics where larger is better (as in XGBoost's early stopping); all others: smaller.
XGBOOST_MAXIMIZED_METRICS = frozenset({"auc", "aucpr", "pre", "map", "ndcg"})
#: Training-run tags copied onto each trial, so a trial says which Airflow try and data it belongs to.
TRIAL_LINEAGE_TAGS = (
    lineage.TASK_TAG,
    lineage.TRAINING_SET_HASH_TAG,
    lineage.AIRFLOW_DAG_ID_TAG,
    lineage.AIRFLOW_RUN_ID_TAG,
    lineage.AIRFLOW_TASK_ID_TAG,
    lineage.AIRFLOW_TRY_NUMBER_TAG,
    lineage.AIRFLOW_MAP_INDEX_TAG,
)


@dataclass(frozen=True)
class SearchOutcome:
    """What the study found: the best trial's sampled params and validation score, and every trial's record."""

    metric: str
    best_params: dict[str, Any]
    best_value: float
    best_trial: int
    best_run_id: str
    n_trials: int
    n_complete: int
    n_pruned: int
    seconds: float
    #: One record per trial: ``number``, ``state``, ``value``, ``params``, ``run_id``.
    trials: list[dict[str, Any]]


class PruningCallback(xgb.callback.TrainingCallback):
    """Report each boosting round's validation metric to the Optuna trial; stop the trial when it is pruned.

    Optuna's ``XGBoostPruningCallback`` lives in optuna-integration, which the trainer does not install. The
    value reported is the early-stopping metric (the last ``eval_metric``), negated when its direction differs
    from the study's, so the pruner compares curves the way the study ranks trials.
    """

    def __init__(self, trial: Any, eval_metric: str, study_maximizes: bool) -> None:
        super().__init__()
        self.trial = trial
        self.eval_metric = eval_metric
        self.sign = 1.0 if (eval_metric.split("@")[0] in XGBOOST_MAXIMIZED_METRICS) == study_maximizes else -1.0
        self.last_round = -1

    def after_iteration(self, model: Any, epoch: int, evals_log: Mapping[str, Any]) -> bool:
        """Report the round's score; raise ``optuna.TrialPruned`` when the pruner gives up on this trial."""
        import optuna

        self.last_round = epoch
        self.trial.report(self.sign * float(evals_log["validation"][self.eval_metric][-1]), step=epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at boosting round {epoch}")
        return False


def early_stopping_metric(booster: Mapping[str, Any]) -> str:
    """The evaluation metric XGBoost's early stopping watches: the last of ``eval_metric``."""
    metrics = booster["eval_metric"]
    return str(metrics if isinstance(metrics, str) else list(metrics)[-1])


def suggest(trial: Any, space: SearchSpace) -> Any:
    """Sample one parameter of ``space`` for ``trial``."""
    if space.kind == "choice":
        return trial.suggest_categorical(space.name, list(space.choices))
    assert space.low is not None and space.high is not None
    if space.kind == "int":
        step = int(space.step or 1)
        return trial.suggest_int(space.name, int(space.low), int(space.high), step=step, log=space.log)
    return trial.suggest_float(space.name, space.low, space.high, step=space.step, log=space.log)


def with_best_params(params: Mapping[str, Any], best: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with the search's best values in its ``xgboost`` section (what the final fit trains)."""
    return {**params, "xgboost": {**params["xgboost"], **best}}


def fail_stale_trials(client: Any, experiment_id: str, key: str) -> int:
    """Mark trials that an earlier start of this attempt left ``RUNNING`` (it was killed) as ``FAILED``."""
    stale = [
        run for run in runs_with_key(client, experiment_id, key, tag=lineage.SEARCH_KEY_TAG)
        if run.info.status == "RUNNING"
    ]  # fmt: skip
    for run in stale:
        client.set_terminated(run.info.run_id, status="FAILED")
    if stale:
        log.warning("Marked %d search trials of an earlier start of key %s as FAILED.", len(stale), key)
    return len(stale)


def validation_scores(
    trained: Any, best_iteration: int, dval: Any, data: TrainingData, params: Mapping[str, Any]
) -> dict[str, float]:
    """The task's metrics of the early-stopped booster on the validation part (the holdout is never scored)."""
    predictions = trained.predict(dval, iteration_range=(0, best_iteration + 1))
    threshold = choose_threshold(data.y_val, predictions, params["threshold"]) if data.task == lineage.BINARY else 0.5
    try:
        return task_metrics(data.task, data.y_val, predictions, threshold=threshold, what="validation window")
    except EvaluationError as exc:
        raise TrainingError(str(exc)) from exc


def run_search(
    params: Mapping[str, Any],
    plan: Mapping[str, Any],
    data: TrainingData,
    config: SearchConfig,
    *,
    client: Any,
    experiment_id: str,
    parent_run_id: str,
    tags: Mapping[str, str],
    pruner: Any = None,
) -> SearchOutcome:
    """Run the study; each trial a nested run of ``parent_run_id``. Return the best trial.

    :param tags: the training run's tags (its idempotency key and lineage are copied onto each trial).
    :param pruner: an Optuna pruner instead of the one ``config.pruning`` describes (median of earlier trials).
    """
    import optuna
    from mlflow.entities import Metric, Param, RunTag

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial comes from this module instead
    key = tags[lineage.IDEMPOTENCY_TAG]
    fail_stale_trials(client, experiment_id, key)
    base = booster_params(params, plan, data.y_train, data.classes)
    threads = max(1, int(base.get("nthread") or os.cpu_count() or 1) // config.parallelism)
    eval_metric = early_stopping_metric(base)
    maximize = config.direction == "maximize"
    trial_tags = {
        **{name: tags[name] for name in TRIAL_LINEAGE_TAGS if tags.get(name)},
        lineage.PARENT_RUN_ID_TAG: parent_run_id,
        lineage.RUN_KIND_TAG: lineage.SEARCH_TRIAL_RUN_KIND,
        lineage.SEARCH_KEY_TAG: key,
    }
    per_thread = threading.local()  # each worker thread builds its own matrices once: they are not shared

    def trial_matrices(booster: Mapping[str, Any]) -> tuple[Any, Any]:
        cache = per_thread.__dict__.setdefault("matrices", {})
        # A QuantileDMatrix is binned once with max_bin: a searched max_bin needs matrices of its own.
        bins = booster.get("max_bin", 256) if plan["matrix"] == "QuantileDMatrix" else None
        if bins not in cache:
            cache[bins] = matrices(plan, data, booster)
        return cache[bins]

    def objective(trial: Any) -> float:
        sampled = {space.name: suggest(trial, space) for space in config.space}
        booster = {**base, **sampled, "nthread": threads}
        run_id = client.create_run(experiment_id, run_name=f"trial-{trial.number}", tags=trial_tags).info.run_id
        trial.set_user_attr("run_id", run_id)
        pruning = PruningCallback(trial, eval_metric, maximize)
        state, metrics = "FAIL", {}
        try:
            dtrain, dval = trial_matrices(booster)
            trained, _, best_iteration = train_booster(params, booster, dtrain, dval, callbacks=[pruning])
            scores = validation_scores(trained, best_iteration, dval, data, params)
            metrics = {**{f"validation_{k}": v for k, v in scores.items()}, "best_iteration": float(best_iteration)}
            state = "COMPLETE"
            return scores[config.metric]
        except optuna.TrialPruned:
            state, metrics = "PRUNED", {"pruned_at_round": float(pruning.last_round)}
            raise
        finally:
            now = int(time.time() * 1000)
            client.log_batch(  # one request per trial for everything it logs: trials are many and short
                run_id,
                params=[Param(k, str(v)) for k, v in {**sampled, "trial_number": trial.number}.items()],
                metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
                tags=[RunTag(lineage.SEARCH_TRIAL_STATE_TAG, state)],
            )
            client.set_terminated(run_id, status="FAILED" if state == "FAIL" else "FINISHED")
            log.info("Search trial %d %s: %s=%s %s", trial.number, state, config.metric,
                     metrics.get(f"validation_{config.metric}"), json.dumps(sampled, sort_keys=True))  # fmt: skip

    pruner = pruner or (
        optuna.pruners.MedianPruner(n_startup_trials=config.startup_trials, n_warmup_steps=config.warmup_rounds)
        if config.pruning
        else optuna.pruners.NopPruner()
    )
    study = optuna.create_study(
        direction=config.direction, sampler=optuna.samplers.TPESampler(seed=config.seed), pruner=pruner
    )
    started = time.perf_counter()
    study.optimize(
        objective,
        n_trials=config.trials,
        timeout=None if config.timeout_minutes is None else config.timeout_minutes * 60,
        n_jobs=config.parallelism,
    )
    seconds = time.perf_counter() - started
    states = optuna.trial.TrialState
    complete = study.get_trials(deepcopy=False, states=(states.COMPLETE,))
    if not complete:
        raise TrainingError(
            f"hyperparameter search finished {len(study.trials)} trials and none completed (all pruned or failed): "
            "raise search.trials or timeout_minutes, or relax search.pruning (more warmup_rounds or startup_trials)"
        )
    best = study.best_trial
    records = [
        {"number": t.number, "state": t.state.name, "value": t.value, "params": t.params,
         "run_id": t.user_attrs.get("run_id")}
        for t in study.get_trials(deepcopy=False)
    ]  # fmt: skip
    outcome = SearchOutcome(
        metric=config.metric,
        best_params=dict(best.params),
        best_value=float(best.value),
        best_trial=best.number,
        best_run_id=str(best.user_attrs["run_id"]),
        n_trials=len(records),
        n_complete=len(complete),
        n_pruned=sum(r["state"] == "PRUNED" for r in records),
        seconds=seconds,
        trials=records,
    )
    log.info(
        "Search: %d trials (%d pruned) in %.1fs; best trial %d %s=%.5f %s",
        outcome.n_trials, outcome.n_pruned, seconds, best.number, config.metric, outcome.best_value,
        json.dumps(outcome.best_params, sort_keys=True),
    )  # fmt: skip
    return outcome
