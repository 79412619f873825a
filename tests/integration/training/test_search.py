"""Hyperparameter search in the trainer against the real MLflow server: nested trials, pruning, determinism,
retries, and one run through Airflow with the local training backend."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from mlops_provider import lineage
from tests.airflow_helpers import run_dag, task_states, task_xcom
from tests.fixtures.training_snapshot import FAST_PARAMS, make_training_snapshot, train_in_process

pytestmark = pytest.mark.integration

SEARCH_SPACE = """\
  space:
    max_depth: {int: [2, 6]}
    eta: {float: [0.05, 0.5], log: true}
    min_child_weight: {float: [0.5, 4.0]}
"""


def search_params_file(folder: Path, name: str, search: str) -> str:
    path = folder / f"{name}.yaml"
    path.write_text(FAST_PARAMS + "search:\n" + search + SEARCH_SPACE)
    return str(path)


def trials_of(client, experiment_id: str, parent_run_id: str) -> list:
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{lineage.PARENT_RUN_ID_TAG}` = '{parent_run_id}'")
    return sorted(runs, key=lambda run: int(run.data.params["trial_number"]))


def test_search_logs_nested_trials_and_registers_the_best_params_once(mlflow_connection, tmp_path):
    import mlflow

    manifest = make_training_snapshot(tmp_path / "snapshot", rows=1500, seed=5, signal=2.0)
    params_file = search_params_file(tmp_path, "search", "  trials: 4\n  seed: 7\n  pruning: false\n")
    name = f"search_{uuid.uuid4().hex[:8]}"
    key = "dag/run/train/-1/search"
    client = mlflow.MlflowClient(mlflow_connection.url)
    # A trial that an earlier, killed start of this same attempt left RUNNING.
    experiment = client.create_experiment(name)
    stale = client.create_run(experiment, tags={lineage.SEARCH_KEY_TAG: key})

    result = train_in_process(manifest, name, params_file, mlflow_connection.url, tmp_path, key)
    assert client.get_run(stale.info.run_id).info.status == "FAILED"
    parent = client.get_run(result["run_id"])
    trials = trials_of(client, experiment, parent.info.run_id)
    assert [int(t.data.params["trial_number"]) for t in trials] == [0, 1, 2, 3]
    for trial in trials:
        assert trial.info.status == "FINISHED" and trial.data.tags[lineage.SEARCH_KEY_TAG] == key
        assert trial.data.tags[lineage.RUN_KIND_TAG] == lineage.SEARCH_TRIAL_RUN_KIND
        assert trial.data.tags[lineage.SEARCH_TRIAL_STATE_TAG] == "COMPLETE"
        assert lineage.IDEMPOTENCY_TAG not in trial.data.tags  # a trial is never taken for the registered run
        assert "validation_roc_auc" in trial.data.metrics and "roc_auc" not in trial.data.metrics  # no holdout

    # The best trial is the one with the highest validation ROC-AUC (the binary default), and its params
    # are the parent's: logged as search.best_params and trained into the registered booster.
    best = max(trials, key=lambda t: t.data.metrics["validation_roc_auc"])
    best_params = json.loads(parent.data.params["search.best_params"])
    assert parent.data.tags[lineage.SEARCH_BEST_TRIAL_TAG] == best.info.run_id
    assert best_params == {
        "max_depth": int(best.data.params["max_depth"]),
        "eta": float(best.data.params["eta"]),
        "min_child_weight": float(best.data.params["min_child_weight"]),
    }
    assert parent.data.metrics["search.best_value"] == pytest.approx(best.data.metrics["validation_roc_auc"])
    assert parent.data.metrics["search.n_trials"] == 4 and parent.data.metrics["search.n_pruned"] == 0
    assert int(parent.data.params["xgb_max_depth"]) == best_params["max_depth"]
    assert float(parent.data.params["xgb_eta"]) == pytest.approx(best_params["eta"])
    # Same params, same data, same seed: the final fit reproduces the best trial's validation score.
    assert parent.data.metrics["validation_roc_auc"] == pytest.approx(best.data.metrics["validation_roc_auc"])

    # A retry of the attempt reuses the registered version: no second search, no second version.
    again = train_in_process(manifest, name, params_file, mlflow_connection.url, tmp_path, key)
    assert again["reused"] is True and again["model_version"] == result["model_version"] == "1"
    assert len(client.search_runs([experiment], filter_string=f"tags.`{lineage.SEARCH_KEY_TAG}` = '{key}'")) == 5
    assert len(client.search_model_versions(f"name = '{name}'")) == 1


def test_search_prunes_and_is_reproducible_with_a_seed(mlflow_connection, tmp_path):
    """Two studies with the same seed (parallelism 1) try the same params and pick the same best; a pruner that
    must prune stops trials through the XGBoost callback, and the pruned trials say so in MLflow."""
    import mlflow
    import optuna

    from include.trainer.data import prepare, read_training_set
    from include.trainer.fit import training_plan
    from include.trainer.params import load_params, search_config
    from include.trainer.search import run_search

    class PruneOddTrials(optuna.pruners.BasePruner):
        """Prune every odd-numbered trial at its third boosting round."""

        def prune(self, study, trial) -> bool:
            return trial.number % 2 == 1 and trial.last_step is not None and trial.last_step >= 2

    manifest = make_training_snapshot(tmp_path / "snapshot", rows=1500, seed=6, signal=2.0)
    params_file = search_params_file(tmp_path, "seeded", "  trials: 4\n  seed: 11\n")
    params = load_params(params_file)
    config = search_config(params, params_file)
    df, manifest = read_training_set(manifest["uri"])
    data = prepare(df, manifest, params["split"], "binary")
    plan = training_plan(params, gpu=False)
    client = mlflow.MlflowClient(mlflow_connection.url)
    experiment = client.create_experiment(f"search_seed_{uuid.uuid4().hex[:8]}")

    outcomes = []
    for attempt in ("a", "b"):
        parent = client.create_run(experiment, tags={lineage.IDEMPOTENCY_TAG: attempt})
        outcome = run_search(
            params, plan, data, config, client=client, experiment_id=experiment, parent_run_id=parent.info.run_id,
            tags={lineage.IDEMPOTENCY_TAG: attempt}, pruner=PruneOddTrials(),
        )  # fmt: skip
        client.set_terminated(parent.info.run_id)
        outcomes.append(outcome)
        trials = trials_of(client, experiment, parent.info.run_id)
        assert [t.data.tags[lineage.SEARCH_TRIAL_STATE_TAG] for t in trials] == [
            "COMPLETE", "PRUNED", "COMPLETE", "PRUNED",
        ]  # fmt: skip
        assert all(t.data.metrics["pruned_at_round"] == 2 for t in trials[1::2])
        assert outcome.n_trials == 4 and outcome.n_pruned == 2 and outcome.best_trial in (0, 2)
    first, second = outcomes
    assert [t["params"] for t in first.trials] == [t["params"] for t in second.trials]
    assert first.best_params == second.best_params and first.best_value == second.best_value


def test_search_through_airflow_registers_the_parent_of_the_trials(mlflow_connection, tmp_path):
    """The local backend through Airflow: two trials at a time, median pruning, the registered run is the parent."""
    import mlflow

    manifest = make_training_snapshot(tmp_path / "snapshot", rows=1500, seed=8, signal=2.0)
    search = "  trials: 4\n  parallelism: 2\n  seed: 3\n  pruning: {startup_trials: 2, warmup_rounds: 3}\n"
    params_file = search_params_file(tmp_path, "airflow", search)
    name = f"search_af_{uuid.uuid4().hex[:8]}"
    dag_run = run_dag("training_local", conf={"model_name": name, "training_set": manifest, "params_file": params_file})
    assert task_states(dag_run) == {"train": "success"}
    result = task_xcom(dag_run, "train")

    client = mlflow.MlflowClient(mlflow_connection.url)
    version = client.get_model_version(name, result["model_version"])
    parent = client.get_run(version.run_id)
    trials = trials_of(client, parent.info.experiment_id, version.run_id)
    assert len(trials) == 4 and parent.data.metrics["search.n_trials"] == 4
    assert {t.data.tags[lineage.AIRFLOW_DAG_ID_TAG] for t in trials} == {"training_local"}
    assert {t.data.tags[lineage.SEARCH_KEY_TAG] for t in trials} == {parent.data.tags[lineage.IDEMPOTENCY_TAG]}
    states = [t.data.tags[lineage.SEARCH_TRIAL_STATE_TAG] for t in trials]
    assert states.count("COMPLETE") + states.count("PRUNED") == 4
    assert parent.data.metrics["search.n_pruned"] == states.count("PRUNED")
    best = json.loads(parent.data.params["search.best_params"])
    assert int(parent.data.params["xgb_max_depth"]) == best["max_depth"]
    # parallelism: 2 ran two trials at once: the first two overlap in time.
    first, second = trials[0].info, trials[1].info
    assert second.start_time < first.end_time and first.start_time < second.end_time
