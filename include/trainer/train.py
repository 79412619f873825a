"""Train the XGBoost fraud model on a training-set snapshot, log it to MLflow and register a version.

CLI (the same in the local subprocess, the Kubernetes pod and the Vertex AI CustomJob)::

    python -m include.trainer.train --training-set-uri URI --params-file FILE --model-name NAME \\
        --output-json PATH [--run-name NAME] [--idempotency-key KEY] [--dag-id ... --dag-run-id ...
        --task-id ... --try-number N --map-index N] [--git-commit SHA]

* The snapshot is ``<uri>/data.parquet`` + ``<uri>/manifest.json`` (``uri`` may name the folder or the
  ``data.parquet`` file; ``file://``, ``s3://``, ``gs://`` through fsspec).
* Time-ordered split on the manifest's ``timestamp_column``: train, validation (early stopping and the
  decision threshold), holdout (the latest slice; the reported metrics).
* XGBoost ``hist``; ``device="cuda"`` with ``QuantileDMatrix`` when a GPU is visible, CPU otherwise.
* MLflow (``MLFLOW_TRACKING_URI``/``MLFLOW_REGISTRY_URI`` and credentials from the environment): params,
  metrics, ROC/PR/calibration/importance plots, the model with signature and input example, the manifest
  as ``training_set/manifest.json``, lineage tags; then a registered model version.
* Idempotent per Airflow try: the run and the version carry ``mlops.idempotency_key``; a second start with
  the same key returns the version the first one registered instead of registering another.
* Writes the result JSON to ``--output-json`` and prints one ``MLOPS_TRAINING_RESULT=<json>`` line.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from mlops_provider.training.evaluation import (
    EvaluationError,
    binary_metrics,
    choose_threshold,
    feature_matrix,
    time_split,
)
from mlops_provider.training.registry import (
    IDEMPOTENCY_TAG,
    MODEL_ID_TAG,
    MODEL_URI_TAG,
    THRESHOLD_TAG,
    result_from_run,
    runs_with_key,
    version_of_run,
)

log = logging.getLogger("mlops.trainer")

RESULT_MARKER = "MLOPS_TRAINING_RESULT="
EXIT_TRAINING_ERROR = 2

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


class TrainingError(RuntimeError):
    """Training cannot proceed; the message says what to change."""


# ---------------------------------------------------------------------------------------------- inputs
def load_params(path: str | Path | None) -> dict[str, Any]:
    """Return the defaults deep-merged with the YAML parameter file."""

    def merge(base: dict, override: Mapping) -> dict:
        out = copy.deepcopy(base)
        for key, value in override.items():
            if isinstance(value, Mapping) and isinstance(out.get(key), dict):
                out[key] = merge(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
        return out

    if not path:
        return copy.deepcopy(DEFAULT_PARAMS)
    text = Path(path).read_text()
    loaded = yaml.safe_load(text) or {}
    if not isinstance(loaded, Mapping):
        raise TrainingError(f"params file {path} must hold a YAML mapping")
    unknown = set(loaded) - set(DEFAULT_PARAMS)
    if unknown:
        raise TrainingError(f"params file {path} has unknown keys {sorted(unknown)}; known: {sorted(DEFAULT_PARAMS)}")
    return merge(DEFAULT_PARAMS, loaded)


def snapshot_paths(uri: str) -> tuple[str, str]:
    """Return ``(data_uri, manifest_uri)`` for a snapshot folder or its ``data.parquet`` file."""
    uri = uri.rstrip("/")
    if "://" not in uri:
        uri = f"file://{os.path.abspath(uri)}"
    folder = uri.rsplit("/", 1)[0] if uri.endswith(".parquet") else uri
    data = uri if uri.endswith(".parquet") else f"{folder}/data.parquet"
    return data, f"{folder}/manifest.json"


def read_training_set(uri: str) -> tuple[Any, dict[str, Any]]:
    """Read the snapshot's rows and manifest."""
    import fsspec
    import pandas as pd

    data_uri, manifest_uri = snapshot_paths(uri)
    try:
        with fsspec.open(manifest_uri, "rt") as handle:
            manifest = json.load(handle)
        with fsspec.open(data_uri, "rb") as handle:
            df = pd.read_parquet(handle)
    except FileNotFoundError as exc:
        raise TrainingError(f"training set snapshot not found at {uri}: {exc}") from exc
    required = ("label_column", "timestamp_column", "feature_columns")
    missing = [key for key in required if not manifest.get(key)]
    if missing:
        raise TrainingError(f"manifest {manifest_uri} lacks {missing}")
    return df, manifest


# ---------------------------------------------------------------------------------------------- device
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


# ---------------------------------------------------------------------------------------------- lineage
def lineage_tags(args: argparse.Namespace, manifest: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, str]:
    """Tags that tie the run to its data, code and Airflow task."""
    tags = {
        "mlops.training_set_uri": str(manifest.get("uri") or args.training_set_uri),
        "mlops.training_set_hash": str(manifest.get("hash", "")),
        "mlops.dataset": str(manifest.get("dataset", "")),
        "mlops.feature_service": str(manifest.get("feature_service", "")),
        "mlops.feature_refs": json.dumps(manifest.get("feature_refs") or []),
        "mlops.window_start": str(manifest.get("start", "")),
        "mlops.window_end": str(manifest.get("end", "")),
        "mlflow.source.git.commit": args.git_commit or env.get("MLOPS_GIT_COMMIT") or _git_commit() or "unknown",
        "airflow.dag_id": args.dag_id or env.get("AIRFLOW_CTX_DAG_ID", ""),
        "airflow.run_id": args.dag_run_id or env.get("AIRFLOW_CTX_DAG_RUN_ID", ""),
        "airflow.task_id": args.task_id or env.get("AIRFLOW_CTX_TASK_ID", ""),
        "airflow.try_number": str(args.try_number or env.get("AIRFLOW_CTX_TRY_NUMBER", "")),
        "airflow.map_index": str(args.map_index if args.map_index is not None else -1),
    }
    tags[IDEMPOTENCY_TAG] = args.idempotency_key or idempotency_key(tags)
    return tags


def idempotency_key(tags: Mapping[str, str]) -> str:
    """``dag_id/run_id/task_id/map_index/try_number`` of the Airflow try (or a unique key outside Airflow)."""
    parts = [tags.get(k, "") for k in ("airflow.dag_id", "airflow.run_id", "airflow.task_id")]
    if not all(parts):
        import uuid

        return f"adhoc/{uuid.uuid4().hex}"
    return "/".join([*parts, tags.get("airflow.map_index", "-1"), tags.get("airflow.try_number", "")])


def _git_commit() -> str | None:
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


# ---------------------------------------------------------------------------------------------- MLflow
def _client(env: Mapping[str, str]):
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


def _experiment_id(client, name: str, artifact_location: str | None) -> str:
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location)
    except MlflowException:  # created concurrently
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def _find_previous(client, experiment_id: str, key: str):
    """Return the newest run of this idempotency key that finished, or None; fail runs left RUNNING."""
    finished = None
    for run in runs_with_key(client, experiment_id, key):
        if run.info.status == "FINISHED" and finished is None and run.data.tags.get(MODEL_URI_TAG):
            finished = run
        elif run.info.status == "RUNNING":
            # An earlier start of this same try died mid-training (pod restarted, worker killed).
            client.set_terminated(run.info.run_id, status="FAILED")
            log.warning("Marked run %s of the same try as FAILED (it never finished).", run.info.run_id)
    return finished


def _register(client, model_name: str, model_uri: str, model_id: str | None, run_id: str, tags: dict[str, str]):
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(model_name, description="Fraud detector trained by the MLOps bundle.")
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    version = client.create_model_version(model_name, source=model_uri, run_id=run_id, tags=tags, model_id=model_id)
    deadline = time.time() + 300
    while version.status == "PENDING_REGISTRATION" and time.time() < deadline:
        time.sleep(1)
        version = client.get_model_version(model_name, version.version)
    if version.status != "READY":
        raise TrainingError(
            f"model version {model_name}/{version.version} is {version.status}: {version.status_message}"
        )
    return version


# ---------------------------------------------------------------------------------------------- plots
def _log_plots(mlflow, y_true, proba, booster, feature_columns: list[str]) -> dict[str, float]:
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
    ax.set(xlabel="Mean predicted probability", ylabel="Observed fraud rate", title="Calibration (holdout)")
    ax.legend(loc="upper left")
    mlflow.log_figure(fig, "plots/calibration.png")
    plt.close(fig)

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


# ---------------------------------------------------------------------------------------------- train
def train(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Run one training (or return the version an earlier start of the same try registered)."""
    import mlflow
    import numpy as np
    import xgboost as xgb
    from mlflow.models import infer_signature

    env = os.environ if env is None else env
    if args.expect_params_sha256:
        import hashlib

        digest = hashlib.sha256(Path(args.params_file).read_bytes()).hexdigest()
        if digest != args.expect_params_sha256:
            raise TrainingError(
                f"params file {args.params_file} in this image (sha256 {digest[:12]}) differs from the DAG bundle's "
                f"({args.expect_params_sha256[:12]}): rebuild and push the trainer image"
            )
    params = load_params(args.params_file)
    client = _client(env)
    df, manifest = read_training_set(args.training_set_uri)
    tags = lineage_tags(args, manifest, env)
    key = tags[IDEMPOTENCY_TAG]
    experiment_id = _experiment_id(
        client, args.experiment_name or args.model_name, args.artifact_location or env.get("MLOPS_MLFLOW_ARTIFACT_ROOT")
    )

    previous = _find_previous(client, experiment_id, key)
    if previous is not None:
        version = version_of_run(client, args.model_name, previous.info.run_id)
        if version is None:
            log.info("Run %s of key %s finished but was not registered: registering it now.", previous.info.run_id, key)
            version = _register(
                client,
                args.model_name,
                previous.data.tags[MODEL_URI_TAG],
                previous.data.tags.get(MODEL_ID_TAG) or None,
                previous.info.run_id,
                _version_tags(tags, previous.data.tags),
            )
        else:
            log.info("Key %s already registered %s version %s: reusing it.", key, args.model_name, version.version)
        return result_from_run(client, args.model_name, previous, version, reused=True)

    label, ts_col = manifest["label_column"], manifest["timestamp_column"]
    features: list[str] = list(manifest["feature_columns"])
    if label not in df.columns:
        raise TrainingError(f"label column {label!r} is not in the training set")
    split = time_split(df, ts_col, **params["split"])
    x_train, x_val, x_hold = (feature_matrix(part, features) for part in (split.train, split.validation, split.holdout))
    y_train, y_val, y_hold = (
        part[label].astype("int32").to_numpy() for part in (split.train, split.validation, split.holdout)
    )
    for name, y in (("train", y_train), ("validation", y_val)):
        if len(np.unique(y)) < 2:
            raise TrainingError(f"the {name} part has a single label value; use a longer training window")

    plan = training_plan(params, gpu=gpu_visible(env))
    booster_params = dict(plan["booster"])
    if params.get("scale_pos_weight") == "auto":
        booster_params["scale_pos_weight"] = float((y_train == 0).sum() / max((y_train == 1).sum(), 1))
    elif params.get("scale_pos_weight") is not None:
        booster_params["scale_pos_weight"] = float(params["scale_pos_weight"])
    matrix = xgb.QuantileDMatrix if plan["matrix"] == "QuantileDMatrix" else xgb.DMatrix
    if matrix is xgb.QuantileDMatrix:
        dtrain = xgb.QuantileDMatrix(
            x_train, label=y_train, feature_names=features, max_bin=booster_params.get("max_bin", 256)
        )
        dval = xgb.QuantileDMatrix(x_val, label=y_val, feature_names=features, ref=dtrain)
    else:
        dtrain = xgb.DMatrix(x_train, label=y_train, feature_names=features)
        dval = xgb.DMatrix(x_val, label=y_val, feature_names=features)

    with mlflow.start_run(experiment_id=experiment_id, run_name=args.run_name, tags=tags) as run:
        run_id = run.info.run_id
        mlflow.log_params(_flat_params(params, booster_params, plan, split, len(df)))
        evals_result: dict = {}
        started = time.perf_counter()
        booster = xgb.train(
            booster_params,
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
        booster.feature_names = features

        p_val = booster.inplace_predict(x_val.to_numpy())
        p_hold = booster.inplace_predict(x_hold.to_numpy())
        threshold = choose_threshold(y_val, p_val, params["threshold"])
        val_metrics = binary_metrics(y_val, p_val, threshold, what="validation window")
        try:
            hold_metrics = binary_metrics(y_hold, p_hold, threshold, what="holdout window")
        except EvaluationError as exc:
            raise TrainingError(str(exc)) from exc

        for metric_name, values in evals_result.get("validation", {}).items():
            for step in range(0, len(values), max(1, len(values) // 100)):
                mlflow.log_metric(f"curve_validation_{metric_name}", float(values[step]), step=step)
        mlflow.log_metrics({k: v for k, v in hold_metrics.items()})
        mlflow.log_metrics({f"validation_{k}": v for k, v in val_metrics.items()})
        mlflow.log_metrics(
            {
                "best_iteration": best_iteration,
                "train_seconds": train_seconds,
                "rows_per_second": len(x_train) * (best_iteration + 1) / max(train_seconds, 1e-9),
            }
        )
        mlflow.set_tags(
            {"mlops.threshold": f"{threshold:.6f}", "mlops.device": plan["device"], "mlops.matrix": plan["matrix"]}
        )
        _log_plots(mlflow, y_hold, p_hold, booster, features)
        mlflow.log_dict(manifest, "training_set/manifest.json")
        mlflow.log_dict(
            {"holdout": hold_metrics, "validation": val_metrics, "holdout_start": str(split.holdout_start),
             "validation_start": str(split.validation_start)},
            "evaluation/metrics.json",
        )  # fmt: skip

        example = x_hold.head(5)
        signature = infer_signature(example, booster.inplace_predict(example.to_numpy()))
        model_info = mlflow.xgboost.log_model(
            booster,
            name="model",
            signature=signature,
            input_example=example,
            model_format="json",
            # Pinning the requirements skips MLflow's inference, which re-imports the model in a subprocess.
            pip_requirements=_pip_requirements(),
            metadata={"feature_columns": features, "threshold": threshold, "label_column": label},
        )
        mlflow.set_tags({MODEL_URI_TAG: model_info.model_uri, MODEL_ID_TAG: model_info.model_id or ""})

    finished = client.get_run(run_id)
    version = _register(
        client,
        args.model_name,
        model_info.model_uri,
        model_info.model_id,
        run_id,
        _version_tags(tags, finished.data.tags),
    )
    log.info("Registered %s version %s from run %s (%s).", args.model_name, version.version, run_id, plan["device"])
    return result_from_run(client, args.model_name, finished, version, reused=False)


def _pip_requirements() -> list[str]:
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


def _version_tags(lineage: Mapping[str, str], run_tags: Mapping[str, str]) -> dict[str, str]:
    keep = (
        IDEMPOTENCY_TAG, "mlops.training_set_uri", "mlops.training_set_hash", "mlops.feature_service",
        "mlops.feature_refs", "mlflow.source.git.commit", "airflow.dag_id", "airflow.run_id", "airflow.task_id",
        "airflow.try_number",
    )  # fmt: skip
    tags = {k: str(lineage[k]) for k in keep if lineage.get(k) not in (None, "")}
    if run_tags.get(THRESHOLD_TAG):
        tags[THRESHOLD_TAG] = run_tags[THRESHOLD_TAG]
    return tags


def _flat_params(
    params: Mapping[str, Any], booster: Mapping[str, Any], plan: Mapping[str, Any], split, rows: int
) -> dict[str, Any]:
    flat = {f"xgb_{k}": (",".join(v) if isinstance(v, list) else v) for k, v in booster.items()}
    flat.update(
        {
            "n_estimators": params["n_estimators"],
            "early_stopping_rounds": params["early_stopping_rounds"],
            "validation_fraction": params["split"]["validation_fraction"],
            "holdout_fraction": params["split"]["holdout_fraction"],
            "threshold_policy": params["threshold"].get("policy"),
            "matrix": plan["matrix"],
            "rows_total": rows,
            "rows_train": len(split.train),
            "rows_validation": len(split.validation),
            "rows_holdout": len(split.holdout),
        }
    )
    return flat


# ---------------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    """The trainer's command line."""
    parser = argparse.ArgumentParser(
        prog="python -m include.trainer.train", description="Train and register the XGBoost model."
    )
    parser.add_argument("--training-set-uri", required=True, help="Snapshot folder (or its data.parquet).")
    parser.add_argument("--params-file", required=True, help="YAML parameter file (see include/trainer/params.yaml).")
    parser.add_argument("--model-name", required=True, help="Registered model name.")
    parser.add_argument("--output-json", required=True, help="Where the result JSON is written.")
    parser.add_argument("--run-name", default=None)
    parser.add_argument("--experiment-name", default=None, help="MLflow experiment (default: the model name).")
    parser.add_argument("--artifact-location", default=None, help="Artifact root for a new experiment.")
    parser.add_argument("--idempotency-key", default=None, help="Default: dag_id/run_id/task_id/map_index/try_number.")
    parser.add_argument("--dag-id", default=None)
    parser.add_argument("--dag-run-id", default=None)
    parser.add_argument("--task-id", default=None)
    parser.add_argument("--try-number", default=None)
    parser.add_argument("--map-index", type=int, default=None)
    parser.add_argument("--git-commit", default=None)
    parser.add_argument(
        "--expect-params-sha256", default=None, help="Refuse a params file whose SHA-256 differs (image drift)."
    )
    return parser


def marker_line(result: Mapping[str, Any]) -> str:
    """The single log line the kubernetes backend can read the result from."""
    return RESULT_MARKER + json.dumps(result, sort_keys=True, separators=(",", ":"))


def _write_termination_message(message: str, path: str = "/dev/termination-log") -> None:
    """In a pod, Kubernetes reports this file as the container's termination message (the reason users see)."""
    target = Path(path)
    if target.exists():
        try:
            target.write_text(message[:4000])
        except OSError:
            pass


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Entry point; returns the process exit code (0 ok, 2 a training error with a clear message)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    try:
        result = train(args, env)
    except (TrainingError, EvaluationError) as exc:
        log.error("Training failed: %s", exc)
        print(f"MLOPS_TRAINING_ERROR={exc}", flush=True)
        _write_termination_message(str(exc))
        return EXIT_TRAINING_ERROR
    output = Path(args.output_json)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=output.parent, delete=False, suffix=".tmp") as handle:
        json.dump(result, handle, indent=2, sort_keys=True)
    os.replace(handle.name, output)
    print(marker_line(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
