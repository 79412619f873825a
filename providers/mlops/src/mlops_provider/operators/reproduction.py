"""Reproduce a registered model version from what it recorded, and prove it by comparing predictions.

A version's run records everything its training depended on: the training-set manifest (with the version of
every validated partition the build read, ``partition_versions``), the trainer's resolved parameters (seed
included, ``training/params.json``) and the trainer's code version (``mlops.code_version``). Reproduction:

1. rebuilds the training set with :class:`~mlops_provider.operators.feast.FeastTrainingSetOperator` pinned to
   those partition versions (never the current data) and checks its content hash equals the recorded one;
2. retrains with :class:`~mlops_provider.operators.training_local.XGBoostTrainLocalOperator`'s trainer process
   (the ``local`` backend's code path) and the recorded parameters, registering the result as a version of
   ``<model>-reproduced`` (its run tagged ``mlops.reproduction_of``), never of the model itself;
3. scores the original and the reproduced model on a fixed sample (the first ``sample_rows`` rows of the
   rebuilt training set, which is sorted deterministically) and reports the largest absolute difference.

A recorded partition version that retention deleted fails with
:class:`~mlops_provider.exceptions.PartitionVersionMissingError` naming the partition, the version and the
setting; a different training-set hash, trainer code or predictions fail with
:class:`~mlops_provider.exceptions.ReproductionMismatchError`.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from mlops_provider.exceptions import MlopsError, ReproductionMismatchError, TrainingFailedError

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops_provider.hooks.mlflow import MlflowHook

#: Suffix of the registered model that holds reproductions (``<model>-reproduced``).
REPRODUCED_SUFFIX = "-reproduced"


def recorded_training(hook: MlflowHook, model_name: str, version: str) -> dict[str, Any]:
    """What ``model_name`` version ``version`` was trained from: run id, manifest, params and code version."""
    from mlops_provider.lineage import CODE_VERSION_TAG, GIT_COMMIT_TAG, TRAINING_PARAMS_ARTIFACT

    registered = hook.get_model_version(model_name, version)
    run_id = registered.run_id
    if not run_id:
        raise MlopsError(f"{model_name} version {version} has no run; it cannot be reproduced.")
    _, manifest = hook.training_set_of_run(run_id)
    where = f"{model_name} version {version} (run {run_id})"
    if not manifest:
        raise MlopsError(f"{where} has no training-set manifest; it cannot be reproduced.")
    if "partition_versions" not in manifest:
        raise MlopsError(
            f"{where} was trained before partition versions were recorded (its manifest has no partition_versions); "
            "only versions trained since can be reproduced."
        )
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = hook.get_client().download_artifacts(run_id, TRAINING_PARAMS_ARTIFACT, tmp)
            params = json.loads(Path(local).read_text())
        except Exception as err:  # MLflow raises several types for a missing artifact
            raise MlopsError(
                f"{where} has no {TRAINING_PARAMS_ARTIFACT} artifact ({type(err).__name__}); it was trained before the "
                "trainer recorded its parameters and cannot be reproduced."
            ) from None
    tags = hook.run_tags(run_id)
    return {
        "run_id": run_id,
        "manifest": manifest,
        "params": params,
        "code_version": tags.get(CODE_VERSION_TAG),
        "git_commit": tags.get(GIT_COMMIT_TAG),
    }


def rebuild_training_set(
    manifest: dict[str, Any],
    *,
    feast_conn_id: str | None = None,
    repo_path: str | None = None,
    storage_conn_id: str | None = None,
    context: Context | None = None,
) -> dict[str, Any]:
    """Rebuild the training set of ``manifest`` from its recorded partition versions; return the new manifest."""
    from mlops_provider.operators.feast import FeastTrainingSetOperator

    service_features = {ref.split(":", 1)[1] for ref in manifest.get("feature_refs", [])}
    builder = FeastTrainingSetOperator(
        task_id="rebuild_training_set",
        dataset=manifest["dataset"],
        feature_service=manifest["feature_service"],
        label_column=manifest["label_column"],
        partition_start=manifest["start"],
        partition_end=manifest["end"],
        timestamp_column=manifest["timestamp_column"],
        entity_features=[c for c in manifest["feature_columns"] if c not in service_features] or None,
        partition_versions=manifest["partition_versions"],
        feast_conn_id=feast_conn_id,
        repo_path=repo_path,
        storage_conn_id=storage_conn_id,
    )
    return dict(builder.execute(context or {}))  # type: ignore[arg-type]


def retrain(
    model_name: str,
    manifest: dict[str, Any],
    params: dict[str, Any],
    *,
    reproduction_of: str,
    mlflow_conn_id: str | None = None,
) -> dict[str, Any]:
    """Train ``<model_name>-reproduced`` on ``manifest`` with ``params`` through the local trainer process."""
    import yaml

    from mlops_provider.lineage import ERROR_MARKER, REPRODUCTION_OF_TAG, last_marked_line
    from mlops_provider.operators.training_local import XGBoostTrainLocalOperator, result_from_marker

    with tempfile.TemporaryDirectory(prefix="mlops-reproduce-") as tmp:
        params_file = Path(tmp) / "params.yaml"
        params_file.write_text(yaml.safe_dump(params, sort_keys=True))
        trainer = XGBoostTrainLocalOperator(
            task_id="retrain",
            model_name=f"{model_name}{REPRODUCED_SUFFIX}",
            training_set=manifest,
            params_file=str(params_file),
            run_name=f"reproduce-{reproduction_of}",
            mlflow_conn_id=mlflow_conn_id,
        )
        command = trainer.command(None)
        output = Path(tmp) / "result.json"
        argv = [*command["argv"]]
        argv[argv.index("--output-json") + 1] = str(output)
        done = subprocess.run(
            argv, cwd=command["cwd"], env=trainer.trainer_env(), capture_output=True, text=True, check=False
        )
        lines = (done.stdout + done.stderr).splitlines()
        if done.returncode != 0:
            detail = last_marked_line(lines, ERROR_MARKER) or "\n".join(lines[-15:])
            raise TrainingFailedError(f"The reproduction's trainer exited with code {done.returncode}: {detail}")
        result = json.loads(output.read_text()) if output.is_file() else result_from_marker(lines)
    if not result:
        raise TrainingFailedError("The reproduction's trainer exited 0 but reported no result.")
    trainer.mlflow_hook.get_client().set_tag(result["run_id"], REPRODUCTION_OF_TAG, reproduction_of)
    return dict(result)


def compare_predictions(
    hook: MlflowHook, original: tuple[str, str], reproduced: tuple[str, str], manifest: dict[str, Any], rows: int
) -> dict[str, Any]:
    """Score both versions on the first ``rows`` rows of the training set; return the sample size and max abs diff."""
    import numpy as np

    from mlops_provider.storage import read_parquet
    from mlops_provider.training.evaluation import booster_predict

    sample = read_parquet(manifest["uri"]).head(rows)
    features = list(manifest["feature_columns"])
    with tempfile.TemporaryDirectory() as tmp:
        first = hook.load_xgboost_model(*original, workdir=f"{tmp}/original")
        second = hook.load_xgboost_model(*reproduced, workdir=f"{tmp}/reproduced")
    diff = np.abs(
        np.asarray(booster_predict(first, sample, features), dtype=float)
        - np.asarray(booster_predict(second, sample, features), dtype=float)
    )
    return {"sample_rows": len(sample), "max_abs_diff": float(diff.max()) if diff.size else 0.0}


def reproduce_model_version(
    model_name: str,
    version: str | int,
    *,
    allow_code_change: bool = False,
    tolerance: float = 0.0,
    sample_rows: int = 500,
    mlflow_conn_id: str | None = None,
    feast_conn_id: str | None = None,
    repo_path: str | None = None,
    storage_conn_id: str | None = None,
    context: Context | None = None,
    log: Any = None,
) -> dict[str, Any]:
    """Rebuild, retrain and compare one version (see the module docstring); return the report."""
    from mlops_provider.hooks.mlflow import MlflowHook
    from mlops_provider.operators.training_local import XGBoostTrainLocalOperator

    hook = MlflowHook(mlflow_conn_id)
    version = str(version)
    recorded = recorded_training(hook, model_name, version)
    manifest = recorded["manifest"]
    current_code = XGBoostTrainLocalOperator(
        task_id="code_version", model_name=model_name, training_set=manifest
    ).resolved_code_version()
    if recorded["code_version"] != current_code and not allow_code_change:
        raise ReproductionMismatchError(
            f"{model_name} version {version} was trained by trainer code {recorded['code_version'] or 'unrecorded'} "
            f"(git commit {recorded['git_commit'] or 'unknown'}); this checkout's trainer is {current_code}. Check out "
            "that commit to reproduce it exactly, or allow the code change (--allow-code-change)."
        )
    rebuilt = rebuild_training_set(
        manifest, feast_conn_id=feast_conn_id, repo_path=repo_path, storage_conn_id=storage_conn_id, context=context
    )
    if log:
        log.info(
            "Rebuilt the training set of %s v%s: %s (%s rows)", model_name, version, rebuilt["hash"], rebuilt["rows"]
        )
    if rebuilt["hash"] != manifest["hash"]:
        raise ReproductionMismatchError(
            f"The training set rebuilt from the recorded partition versions has hash {rebuilt['hash']} ({rebuilt['rows']} "
            f"rows), not the recorded {manifest['hash']} ({manifest.get('rows')} rows): the feature definitions or "
            "the static tables they read changed since (partition versions are immutable)."
        )
    result = retrain(
        model_name, rebuilt, recorded["params"], reproduction_of=recorded["run_id"], mlflow_conn_id=mlflow_conn_id
    )
    reproduced = (str(result["model_name"]), str(result["model_version"]))
    comparison = compare_predictions(hook, (model_name, version), reproduced, rebuilt, sample_rows)
    report = {
        "model_name": model_name,
        "version": version,
        "run_id": recorded["run_id"],
        "training_set_hash": manifest["hash"],
        "rebuilt_training_set_hash": rebuilt["hash"],
        "partition_versions": manifest["partition_versions"],
        "code_version": recorded["code_version"],
        "current_code_version": current_code,
        "reproduced_model_name": reproduced[0],
        "reproduced_version": reproduced[1],
        "reproduced_run_id": result["run_id"],
        **comparison,
        "identical": comparison["max_abs_diff"] <= tolerance,
    }
    if not report["identical"]:
        raise ReproductionMismatchError(
            f"The reproduced model {reproduced[0]} version {reproduced[1]} predicts up to {comparison['max_abs_diff']:.3g} "
            f"away from {model_name} version {version} on {comparison['sample_rows']} rows (tolerance {tolerance}). "
            f"Report: {json.dumps(report, default=str)}"
        )
    return report


class ModelReproductionOperator(BaseOperator):
    """Reproduce a registered model version from its recorded data, parameters and code; fail if it differs.

    See :mod:`mlops_provider.operators.reproduction`. Returns the report (hashes, partition versions, the
    reproduced version, ``max_abs_diff`` on the fixed sample). A retry of the same task reuses the version its
    first try registered (the trainer's idempotency key comes from this task's Airflow ids).

    :param model_name: registered model name. (templated)
    :param version: the version to reproduce. (templated)
    :param allow_code_change: retrain even though this worker's trainer code differs from the recorded one.
    :param tolerance: largest accepted absolute difference between the two models' predictions.
    :param sample_rows: rows of the training set both models score.
    :param mlflow_conn_id: MLflow connection. (templated)
    :param feast_conn_id: Feast connection. (templated)
    :param repo_path: Feast feature repository. (templated)
    :param storage_conn_id: connection for ``data_root``. (templated)
    """

    template_fields: Sequence[str] = (
        "model_name",
        "version",
        "mlflow_conn_id",
        "feast_conn_id",
        "repo_path",
        "storage_conn_id",
    )
    ui_color = "#c7e9c0"

    def __init__(
        self,
        *,
        model_name: str,
        version: str | int,
        allow_code_change: bool = False,
        tolerance: float = 0.0,
        sample_rows: int = 500,
        mlflow_conn_id: str | None = None,
        feast_conn_id: str | None = None,
        repo_path: str | None = None,
        storage_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.version = version
        self.allow_code_change = allow_code_change
        self.tolerance = tolerance
        self.sample_rows = sample_rows
        self.mlflow_conn_id = mlflow_conn_id
        self.feast_conn_id = feast_conn_id
        self.repo_path = repo_path
        self.storage_conn_id = storage_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        """Reproduce the version and return the report."""
        report = reproduce_model_version(
            self.model_name,
            self.version,
            allow_code_change=self.allow_code_change,
            tolerance=self.tolerance,
            sample_rows=self.sample_rows,
            mlflow_conn_id=self.mlflow_conn_id,
            feast_conn_id=self.feast_conn_id,
            repo_path=self.repo_path,
            storage_conn_id=self.storage_conn_id,
            context=context,
            log=self.log,
        )
        self.log.info(
            "%s version %s reproduced as %s version %s: max abs prediction difference %s on %s rows",
            self.model_name,
            self.version,
            report["reproduced_model_name"],
            report["reproduced_version"],
            report["max_abs_diff"],
            report["sample_rows"],
        )
        return report
