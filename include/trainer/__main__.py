"""Train the XGBoost model on a training-set snapshot, log it to MLflow and register a version.

CLI (the same in the local subprocess, the Kubernetes pod and the Vertex AI CustomJob; the operators build
it with :mod:`mlops_provider.training.launch`)::

    python -m include.trainer --training-set-uri URI --params-file FILE --model-name NAME \\
        --output-json PATH [--run-name NAME] [--idempotency-key KEY] [--dag-id ... --dag-run-id ...
        --task-id ... --try-number N --map-index N] [--git-commit SHA] [--expect-params-sha256 SHA]

* :mod:`~include.trainer.params`: defaults merged with the YAML params file; its ``task`` (binary, multiclass,
  regression) is the source of truth for the model's task, recorded as the ``mlops.task`` tag.
* :mod:`~include.trainer.data`: the snapshot (``<uri>/data.parquet`` + ``<uri>/manifest.json``), split by
  time into train, validation (early stopping, threshold) and holdout (the reported metrics).
* :mod:`~include.trainer.fit`: XGBoost ``hist``, ``device="cuda"`` with ``QuantileDMatrix`` on a GPU.
* :mod:`~include.trainer.search`: with a ``search:`` block in the params file, an Optuna study (each trial a
  nested run) picks the ``xgboost`` params the final model is trained with.
* :mod:`~include.trainer.tracking`: MLflow run, lineage tags, model, registered version; idempotent per
  attempt (a second start with the same key returns the version the first one registered).

Writes the result JSON to ``--output-json`` and prints one ``RESULT_MARKER<json>`` line; on a training
error prints one ``ERROR_MARKER<message>`` line and exits ``EXIT_TRAINING_ERROR``
(:mod:`mlops_provider.lineage`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from include.trainer import tracking
from include.trainer.engine import ENGINES, TrainingEngine, training_engine
from include.trainer.fit import booster_params
from include.trainer.params import TrainingError, check_params_digest, check_task, load_params, search_config
from include.trainer.search import run_search, with_best_params
from mlops_provider.lineage import (
    ERROR_MARKER,
    EXIT_TRAINING_ERROR,
    IDEMPOTENCY_TAG,
    RESULT_MARKER,
    TASK_TAG,
    TRAINER_MODULE,
)
from mlops_provider.training.evaluation import EvaluationError

log = logging.getLogger("mlops.trainer")


def run(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Run one training (or return the version an earlier start of the same attempt registered)."""
    env = os.environ if env is None else env
    if args.expect_params_sha256:
        check_params_digest(args.params_file, args.expect_params_sha256)
    params = load_params(args.params_file)
    task = check_task(params, args.params_file)
    client = tracking.client(env)
    engine = training_engine(args, env)
    try:
        return _train(args, env, params, task, client, engine)
    finally:
        engine.close()


def _train(
    args: argparse.Namespace,
    env: Mapping[str, str],
    params: dict[str, Any],
    task: str,
    client: Any,
    engine: TrainingEngine,
) -> dict[str, Any]:
    rows, manifest = engine.read_training_set(args.training_set_uri)
    tags = {**tracking.lineage_tags(args, manifest, env), TASK_TAG: task}
    experiment = tracking.experiment_id(
        client, args.experiment_name or args.model_name, args.artifact_location or env.get("MLOPS_MLFLOW_ARTIFACT_ROOT")
    )
    reused = tracking.reuse_previous(client, experiment, args.model_name, tags)
    if reused is not None:
        return reused

    data = engine.prepare(rows, manifest, params, task)
    gpu = engine.gpu_visible()
    plan = engine.training_plan(params, gpu=gpu)
    search = search_config(params, args.params_file)
    if search is not None and engine.name != "memory":
        raise TrainingError(
            f"the params file {args.params_file} has a search: block, which runs on the in-memory engine only; "
            f"train with the local, kubernetes or vertex backend, or drop the search for --engine {engine.name}"
        )
    with tracking.training_run(experiment, args.run_name, tags) as run_id:
        if search is not None:
            tracking.log_search_config(search)
            outcome = run_search(
                params, plan, data, search, client=client, experiment_id=experiment, parent_run_id=run_id, tags=tags
            )
            tracking.log_search_outcome(outcome)
            params = with_best_params(params, outcome.best_params)
            plan = engine.training_plan(params, gpu=gpu)
        tracking.log_params(params, booster_params(params, plan, data.y_train, data.classes), plan, data)
        fitted = engine.fit(params, plan, data)
        model_info = tracking.log_training(params, plan, data, fitted, manifest)
    result = tracking.register_run(client, args.model_name, run_id, model_info, tags)
    log.info(
        "Registered %s version %s from run %s (%s, key %s).",
        args.model_name, result["model_version"], run_id, plan["device"], tags[IDEMPOTENCY_TAG],
    )  # fmt: skip
    return result


def build_parser() -> argparse.ArgumentParser:
    """The trainer's command line."""
    parser = argparse.ArgumentParser(
        prog=f"python -m {TRAINER_MODULE}", description="Train and register the XGBoost model."
    )
    parser.add_argument("--training-set-uri", required=True, help="Snapshot folder (or its data.parquet).")
    parser.add_argument("--params-file", required=True, help="YAML parameter file (see include/trainer/params.yaml).")
    parser.add_argument("--model-name", required=True, help="Registered model name.")
    parser.add_argument("--output-json", required=True, help="Where the result JSON is written.")
    parser.add_argument("--run-name", default=None)
    parser.add_argument("--experiment-name", default=None, help="MLflow experiment (default: the model name).")
    parser.add_argument("--artifact-location", default=None, help="Artifact root for a new experiment.")
    parser.add_argument(
        "--idempotency-key", default=None, help="Default: built from the Airflow ids, data, params and code version."
    )
    parser.add_argument("--dag-id", default=None)
    parser.add_argument("--dag-run-id", default=None)
    parser.add_argument("--task-id", default=None)
    parser.add_argument("--try-number", default=None)
    parser.add_argument("--map-index", type=int, default=None)
    parser.add_argument("--git-commit", default=None)
    parser.add_argument(
        "--engine", choices=ENGINES, default="memory", help="Where the rows live while boosting (dask: on a cluster)."
    )
    parser.add_argument(
        "--dask-scheduler", default=None, help="Scheduler of --engine dask (default: DASK_SCHEDULER_ADDRESS)."
    )
    parser.add_argument(
        "--expect-params-sha256", default=None, help="Refuse a params file whose SHA-256 differs (image drift)."
    )
    return parser


def marker_line(result: Mapping[str, Any]) -> str:
    """The single log line a launcher can read the result from."""
    return RESULT_MARKER + json.dumps(result, sort_keys=True, separators=(",", ":"))


def write_termination_message(message: str, path: str = "/dev/termination-log") -> None:
    """In a pod, Kubernetes reports this file as the container's termination message (the reason users see)."""
    target = Path(path)
    if target.exists():
        try:
            target.write_text(message[:4000])
        except OSError:
            pass


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Entry point; return the process exit code (0 ok, ``EXIT_TRAINING_ERROR`` with a clear message)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    try:
        result = run(args, env)
    except (TrainingError, EvaluationError) as exc:
        log.error("Training failed: %s", exc)
        print(f"{ERROR_MARKER}{exc}", flush=True)
        write_termination_message(str(exc))
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
