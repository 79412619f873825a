"""Everything the trainer writes to MLflow: lineage tags, the run (params, metrics, plots, model), the version.

Idempotent per training attempt: the run and the version carry ``IDEMPOTENCY_TAG``; a second start with
the same key returns the version the first one registered (registering a finished but unregistered run
first) instead of training again. Tag names come from :mod:`mlops_provider.lineage`.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from include.trainer.data import TrainingData
from include.trainer.fit import FitResult
from include.trainer.params import SearchConfig, TrainingError
from include.trainer.search import SearchOutcome
from mlops_provider import lineage
from mlops_provider.training.evaluation import booster_predict
from mlops_provider.training.launch import file_sha256, idempotency_key, source_digest
from mlops_provider.training.registry import result_from_run, runs_with_key, version_of_run

log = logging.getLogger("mlops.trainer")

#: Run tags copied onto the registered model version.
VERSION_TAGS = (*lineage.LINEAGE_TAGS, lineage.AIRFLOW_TRY_NUMBER_TAG)


# ---------------------------------------------------------------------------------------------- lineage
def git_commit() -> str | None:
    """The trainer's source commit when it runs from a git checkout."""
    git = shutil.which("git")
    if not git:
        return None
    try:
        out = subprocess.run(
            [git, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False,
            cwd=Path(__file__).resolve().parent,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def trainer_code_version() -> str:
    """``sha256:<digest>`` of this trainer package's sources (what the local operator keys attempts with)."""
    return f"sha256:{source_digest(Path(__file__).resolve().parent)}"


def lineage_tags(args: argparse.Namespace, manifest: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, str]:
    """Tags that tie the run to its data, code and Airflow task, and the attempt's idempotency key."""
    tags = {
        lineage.TRAINING_SET_URI_TAG: str(manifest.get("uri") or args.training_set_uri),
        lineage.TRAINING_SET_HASH_TAG: str(manifest.get("hash", "")),
        lineage.DATASET_TAG: str(manifest.get("dataset", "")),
        lineage.FEATURE_SERVICE_TAG: str(manifest.get("feature_service", "")),
        lineage.FEATURE_REFS_TAG: json.dumps(manifest.get("feature_refs") or []),
        lineage.WINDOW_START_TAG: str(manifest.get("start", "")),
        lineage.WINDOW_END_TAG: str(manifest.get("end", "")),
        lineage.RUN_KIND_TAG: "training",
        lineage.GIT_COMMIT_TAG: args.git_commit or env.get("MLOPS_GIT_COMMIT") or git_commit() or "unknown",
        lineage.CODE_VERSION_TAG: trainer_code_version(),
        lineage.AIRFLOW_DAG_ID_TAG: args.dag_id or env.get("AIRFLOW_CTX_DAG_ID", ""),
        lineage.AIRFLOW_RUN_ID_TAG: args.dag_run_id or env.get("AIRFLOW_CTX_DAG_RUN_ID", ""),
        lineage.AIRFLOW_TASK_ID_TAG: args.task_id or env.get("AIRFLOW_CTX_TASK_ID", ""),
        lineage.AIRFLOW_TRY_NUMBER_TAG: str(args.try_number or env.get("AIRFLOW_CTX_TRY_NUMBER", "")),
        lineage.AIRFLOW_MAP_INDEX_TAG: str(args.map_index if args.map_index is not None else -1),
    }
    tags[lineage.IDEMPOTENCY_TAG] = args.idempotency_key or default_key(tags, args.params_file)
    return tags


def default_key(tags: Mapping[str, str], params_file: str) -> str:
    """The key when the launcher passed none: the same recipe as the operators, or a unique one outside Airflow."""
    ids = [
        tags.get(k, "") for k in (lineage.AIRFLOW_DAG_ID_TAG, lineage.AIRFLOW_RUN_ID_TAG, lineage.AIRFLOW_TASK_ID_TAG)
    ]
    if not all(ids):
        import uuid

        return f"adhoc/{uuid.uuid4().hex}"
    return idempotency_key(
        dag_id=ids[0],
        run_id=ids[1],
        task_id=ids[2],
        map_index=int(tags.get(lineage.AIRFLOW_MAP_INDEX_TAG) or -1),
        training_set_hash=tags.get(lineage.TRAINING_SET_HASH_TAG) or tags.get(lineage.TRAINING_SET_URI_TAG, ""),
        params_hash=file_sha256(params_file) or "",
        code_version=tags.get(lineage.GIT_COMMIT_TAG, ""),
    )


def version_tags(tags: Mapping[str, str], run_tags: Mapping[str, str]) -> dict[str, str]:
    """The lineage tags (and the run's threshold) that the registered version carries."""
    out = {k: str(tags[k]) for k in VERSION_TAGS if tags.get(k) not in (None, "")}
    if run_tags.get(lineage.THRESHOLD_TAG):
        out[lineage.THRESHOLD_TAG] = run_tags[lineage.THRESHOLD_TAG]
    return out


# ---------------------------------------------------------------------------------------------- client
def client(env: Mapping[str, str]) -> Any:
    """An MLflow client for the tracking (and registry) server in ``env``; also the fluent API's target."""
    import mlflow

    tracking_uri = env.get("MLFLOW_TRACKING_URI")
    if not tracking_uri:
        raise TrainingError(
            "MLFLOW_TRACKING_URI is not set: the operator passes the tracking server in the environment"
        )
    mlflow.set_tracking_uri(tracking_uri)
    if env.get("MLFLOW_REGISTRY_URI"):
        mlflow.set_registry_uri(env["MLFLOW_REGISTRY_URI"])
    return mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=env.get("MLFLOW_REGISTRY_URI") or tracking_uri)


def experiment_id(mlflow_client: Any, name: str, artifact_location: str | None) -> str:
    """The id of experiment ``name``, created (race-safe) when missing."""
    from mlflow.exceptions import MlflowException

    experiment = mlflow_client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return mlflow_client.create_experiment(name, artifact_location=artifact_location)
    except MlflowException:  # created concurrently
        experiment = mlflow_client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


# ---------------------------------------------------------------------------------------------- idempotency
def _find_previous(mlflow_client: Any, experiment: str, key: str) -> Any:
    """Return the newest finished run of this key that logged a model, or None; fail runs left RUNNING."""
    finished = None
    for run in runs_with_key(mlflow_client, experiment, key):
        if run.info.status == "FINISHED" and finished is None and run.data.tags.get(lineage.MODEL_URI_TAG):
            finished = run
        elif run.info.status == "RUNNING":
            # An earlier start of this same attempt died mid-training (pod restarted, worker killed).
            mlflow_client.set_terminated(run.info.run_id, status="FAILED")
            log.warning("Marked run %s of the same attempt as FAILED (it never finished).", run.info.run_id)
    return finished


def reuse_previous(
    mlflow_client: Any, experiment: str, model_name: str, tags: Mapping[str, str]
) -> dict[str, Any] | None:
    """The result an earlier start of this attempt registered (registering its finished run if needed), or None."""
    key = tags[lineage.IDEMPOTENCY_TAG]
    previous = _find_previous(mlflow_client, experiment, key)
    if previous is None:
        return None
    version = version_of_run(mlflow_client, model_name, previous.info.run_id)
    if version is None:
        log.info("Run %s of key %s finished but was not registered: registering it now.", previous.info.run_id, key)
        version = register(
            mlflow_client,
            model_name,
            previous.data.tags[lineage.MODEL_URI_TAG],
            previous.data.tags.get(lineage.MODEL_ID_TAG) or None,
            previous.info.run_id,
            version_tags(tags, previous.data.tags),
        )
    else:
        log.info("Key %s already registered %s version %s: reusing it.", key, model_name, version.version)
    return dict(result_from_run(mlflow_client, model_name, previous, version, reused=True))


def register(
    mlflow_client: Any, model_name: str, model_uri: str, model_id: str | None, run_id: str, tags: dict[str, str]
) -> Any:
    """Register ``model_uri`` as a new version of ``model_name`` and wait until it is READY."""
    from mlflow.exceptions import MlflowException

    try:
        mlflow_client.create_registered_model(model_name, description="Trained by the MLOps bundle's XGBoost trainer.")
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    version = mlflow_client.create_model_version(
        model_name, source=model_uri, run_id=run_id, tags=tags, model_id=model_id
    )
    deadline = time.time() + 300
    while version.status == "PENDING_REGISTRATION" and time.time() < deadline:
        time.sleep(1)
        version = mlflow_client.get_model_version(model_name, version.version)
    if version.status != "READY":
        raise TrainingError(
            f"model version {model_name}/{version.version} is {version.status}: {version.status_message}"
        )
    return version


# ---------------------------------------------------------------------------------------------- the run
@contextmanager
def training_run(experiment: str, run_name: str | None, tags: Mapping[str, str]) -> Iterator[str]:
    """Open the MLflow run of this training (the fluent API's active run) and yield its id."""
    import mlflow

    with mlflow.start_run(experiment_id=experiment, run_name=run_name, tags=dict(tags)) as run:
        yield run.info.run_id


def log_params(
    params: Mapping[str, Any], booster: Mapping[str, Any], plan: Mapping[str, Any], data: TrainingData
) -> None:
    """Log the run's params (before training, so a run that dies mid-training still shows them)."""
    import mlflow

    mlflow.log_params(flat_params(params, booster, plan, data))
    mlflow.log_dict(dict(params), lineage.TRAINING_PARAMS_ARTIFACT)  # what a reproduction retrains with


def log_search_config(config: SearchConfig) -> None:
    """Log the search's budget and space on the training run (before the trials, so a killed search shows them)."""
    import mlflow

    mlflow.log_params(
        {
            "search.metric": config.metric,
            "search.trials": config.trials,
            "search.timeout_minutes": config.timeout_minutes,
            "search.parallelism": config.parallelism,
            "search.seed": config.seed,
            "search.pruning": json.dumps(
                {"startup_trials": config.startup_trials, "warmup_rounds": config.warmup_rounds}
                if config.pruning
                else False
            ),
            "search.space": json.dumps(
                {s.name: {k: v for k, v in vars(s).items() if k != "name"} for s in config.space}
            ),
        }
    )


def log_search_outcome(outcome: SearchOutcome) -> None:
    """Log the best params (``search.best_params``), the best validation score and the trial counts."""
    import mlflow

    mlflow.log_param("search.best_params", json.dumps(outcome.best_params, sort_keys=True))
    mlflow.log_metrics(
        {
            "search.best_value": outcome.best_value,
            "search.n_trials": outcome.n_trials,
            "search.n_complete": outcome.n_complete,
            "search.n_pruned": outcome.n_pruned,
            "search.seconds": outcome.seconds,
        }
    )
    mlflow.set_tag(lineage.SEARCH_BEST_TRIAL_TAG, outcome.best_run_id)
    mlflow.log_dict({"metric": outcome.metric, "best_trial": outcome.best_trial, "trials": outcome.trials},
                    "search/trials.json")  # fmt: skip


def log_training(
    params: Mapping[str, Any], plan: Mapping[str, Any], data: TrainingData, fitted: FitResult, manifest: Mapping
) -> Any:
    """Log metrics, plots, the manifest and the model to the active run; return the model info."""
    import mlflow
    import mlflow.xgboost
    from mlflow.models import infer_signature

    for metric_name, values in fitted.evals_result.get("validation", {}).items():
        for step in range(0, len(values), max(1, len(values) // 100)):
            mlflow.log_metric(f"curve_validation_{metric_name}", float(values[step]), step=step)
    mlflow.log_metrics(dict(fitted.holdout_metrics))
    mlflow.log_metrics({f"validation_{k}": v for k, v in fitted.validation_metrics.items()})
    mlflow.log_metrics(
        {
            "best_iteration": fitted.best_iteration,
            "train_seconds": fitted.train_seconds,
            "rows_per_second": len(data.x_train) * (fitted.best_iteration + 1) / max(fitted.train_seconds, 1e-9),
        }
    )
    run_tags = {lineage.DEVICE_TAG: plan["device"], lineage.MATRIX_TAG: plan["matrix"]}
    if fitted.threshold is not None:  # binary only
        run_tags[lineage.THRESHOLD_TAG] = f"{fitted.threshold:.6f}"
    mlflow.set_tags(run_tags)
    if data.task == lineage.BINARY:
        log_plots(mlflow, data.y_hold, fitted.holdout_proba, fitted.booster, data.features)
    else:
        log_importance(mlflow, fitted.booster, data.features)
    mlflow.log_dict(dict(manifest), lineage.TRAINING_SET_MANIFEST_ARTIFACT)
    if data.categories:
        mlflow.log_dict(data.categories, lineage.CATEGORIES_ARTIFACT)
    mlflow.log_dict(
        {"holdout": fitted.holdout_metrics, "validation": fitted.validation_metrics,
         "holdout_start": str(data.split.holdout_start), "validation_start": str(data.split.validation_start)},
        "evaluation/metrics.json",
    )  # fmt: skip

    example = data.x_hold.head(5)
    if data.categories:  # the signature shows categorical inputs as the strings a client sends
        example = example.astype({column: object for column in data.categories})
    signature = infer_signature(example, booster_predict(fitted.booster, example, data.features))
    model_info = mlflow.xgboost.log_model(
        fitted.booster,
        name="model",
        signature=signature,
        input_example=example,
        model_format="json",
        # Pinning the requirements skips MLflow's inference, which re-imports the model in a subprocess.
        pip_requirements=pip_requirements(),
        metadata={
            "feature_columns": data.features,
            "threshold": fitted.threshold,
            "label_column": data.label,
            "task": data.task,
            "classes": json.dumps([c.item() if hasattr(c, "item") else c for c in data.classes])
            if data.classes is not None
            else None,
            # The frozen category mapping (also in the model file's booster attribute, which is what scorers read).
            "categories": json.dumps(data.categories, sort_keys=True) if data.categories else None,
        },
    )
    mlflow.set_tags({lineage.MODEL_URI_TAG: model_info.model_uri, lineage.MODEL_ID_TAG: model_info.model_id or ""})
    return model_info


def register_run(
    mlflow_client: Any, model_name: str, run_id: str, model_info: Any, tags: Mapping[str, str]
) -> dict[str, Any]:
    """Register the finished run's model and return the training result."""
    finished = mlflow_client.get_run(run_id)
    version = register(
        mlflow_client,
        model_name,
        model_info.model_uri,
        model_info.model_id,
        run_id,
        version_tags(tags, finished.data.tags),
    )
    return dict(result_from_run(mlflow_client, model_name, finished, version, reused=False))


def log_plots(mlflow: Any, y_true: Any, proba: Any, booster: Any, feature_columns: list[str]) -> dict[str, float]:
    """Log ROC, precision-recall, calibration and feature-importance plots (holdout) and the importances."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import precision_recall_curve, roc_curve

    fpr, tpr, _ = roc_curve(y_true, proba)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(fpr, tpr, label="model")
    ax.plot([0, 1], [0, 1], "--", color="grey", label="chance")
    ax.set(xlabel="False positive rate", ylabel="True positive rate", title="ROC curve (holdout)")
    ax.legend(loc="lower right")
    mlflow.log_figure(fig, "plots/roc_curve.png")
    plt.close(fig)

    precision, recall, _ = precision_recall_curve(y_true, proba)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(recall, precision)
    ax.axhline(float(np.mean(y_true)), linestyle="--", color="grey", label="base rate")
    ax.set(xlabel="Recall", ylabel="Precision", title="Precision-recall curve (holdout)")
    ax.legend(loc="upper right")
    mlflow.log_figure(fig, "plots/pr_curve.png")
    plt.close(fig)

    frac_pos, mean_pred = calibration_curve(y_true, proba, n_bins=10, strategy="quantile")
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(mean_pred, frac_pos, marker="o", label="model")
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect")
    ax.set(xlabel="Mean predicted probability", ylabel="Observed positive rate", title="Calibration (holdout)")
    ax.legend(loc="upper left")
    mlflow.log_figure(fig, "plots/calibration.png")
    plt.close(fig)

    return log_importance(mlflow, booster, feature_columns)


def log_importance(mlflow: Any, booster: Any, feature_columns: list[str]) -> dict[str, float]:
    """Log the feature-importance plot and ``feature_importance.json`` (gain per feature)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gain = booster.get_score(importance_type="gain")
    importance = {name: float(gain.get(name, 0.0)) for name in feature_columns}
    ordered = sorted(importance.items(), key=lambda kv: kv[1])
    fig, ax = plt.subplots(figsize=(6, max(3, 0.3 * len(ordered))))
    ax.barh([k for k, _ in ordered], [v for _, v in ordered])
    ax.set(xlabel="Total gain / splits (average gain)", title="Feature importance (gain)")
    fig.tight_layout()
    mlflow.log_figure(fig, "plots/feature_importance.png")
    plt.close(fig)
    mlflow.log_dict(importance, "feature_importance.json")
    return importance


def pip_requirements() -> list[str]:
    """Pinned requirements of the logged model (the versions this trainer ran with)."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for package in ("mlflow-skinny", "xgboost", "numpy", "pandas", "scikit-learn"):
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            if package == "mlflow-skinny":
                try:
                    pins.append(f"mlflow=={version('mlflow')}")
                except PackageNotFoundError:
                    pass
    return pins


def flat_params(
    params: Mapping[str, Any], booster: Mapping[str, Any], plan: Mapping[str, Any], data: TrainingData
) -> dict[str, Any]:
    """The run's params: booster parameters (``xgb_*``), rounds, split fractions and row counts."""
    flat = {f"xgb_{k}": (",".join(v) if isinstance(v, list) else v) for k, v in booster.items()}
    flat.update(
        {
            "n_estimators": params["n_estimators"],
            "early_stopping_rounds": params["early_stopping_rounds"],
            "validation_fraction": params["split"]["validation_fraction"],
            "holdout_fraction": params["split"]["holdout_fraction"],
            "task": data.task,
            "threshold_policy": params["threshold"].get("policy") if data.task == lineage.BINARY else None,
            "matrix": plan["matrix"],
            "rows_total": data.rows,
            "rows_train": len(data.split.train),
            "rows_validation": len(data.split.validation),
            "rows_holdout": len(data.split.holdout),
            "categorical_columns": ",".join(sorted(data.categories or {})) or None,
        }
    )
    return flat
