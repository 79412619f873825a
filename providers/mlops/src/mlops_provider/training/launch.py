"""How every training backend launches the trainer: its command-line arguments and its idempotency key.

One module for the local subprocess, the Kubernetes pod and the Vertex AI CustomJob, so the three
backends start the trainer identically and agree on the key the trainer tags its run and model version
with. Pure standard library: the trainer image imports it too (the provider is installed ``--no-deps``).

The idempotency key names one training *attempt*: the Airflow task (dag, run, task, map index) and what
it trains on (training-set hash, params hash, code version). It never includes the try number: a retry
of the same attempt finds the version the first try registered instead of registering a duplicate, while
new data, new params or a new trainer image make a new key, hence a new version.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_provider.lineage import TRAINER_MODULE

__all__ = [
    "RESULT_PATH",
    "TRAINER_MODULE",
    "AirflowIds",
    "TrainerLaunch",
    "argument_value",
    "file_sha256",
    "idempotency_key",
    "key_label",
    "label_value",
    "source_digest",
    "trainer_arguments",
]

#: Where the trainer writes its result inside a container (an emptyDir in the pod).
RESULT_PATH = "/tmp/mlops/result.json"


@dataclass(frozen=True)
class AirflowIds:
    """The ids of the running Airflow task instance, recorded as lineage tags and used in the key."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1
    try_number: int | None = None

    @classmethod
    def from_context(cls, context: Mapping[str, Any] | None) -> AirflowIds | None:
        """Read the ids from a task context (None outside Airflow)."""
        if not context:
            return None
        ti = context["ti"]
        map_index = getattr(ti, "map_index", None)
        return cls(
            dag_id=str(ti.dag_id),
            run_id=str(context["run_id"]),
            task_id=str(ti.task_id),
            map_index=-1 if map_index is None else int(map_index),
            try_number=getattr(ti, "try_number", None),
        )


def idempotency_key(
    *,
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: int,
    training_set_hash: str,
    params_hash: str,
    code_version: str,
) -> str:
    """Return ``dag_id/run_id/task_id/map_index/<inputs digest>`` for one training attempt.

    The digest covers the training-set hash, the params hash and the code version, so the key changes
    when any of them does; the try number is deliberately left out (see the module docstring).
    """
    inputs = "\n".join((training_set_hash, params_hash, code_version))
    digest = hashlib.sha256(inputs.encode()).hexdigest()[:16]
    return f"{dag_id}/{run_id}/{task_id}/{map_index}/{digest}"


def key_label(key: str) -> str:
    """A label-safe digest of ``key`` (cloud labels allow 63 lowercase characters, no ``/`` or ``:``)."""
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def label_value(value: str) -> str:
    """``value`` as a Kubernetes or Google Cloud label value: lowercase ``[a-z0-9_-]``, at most 63 characters."""
    return re.sub(r"[^a-z0-9_-]", "-", value.lower())[:63].strip("-_")


def file_sha256(path: str | Path) -> str | None:
    """SHA-256 of a file's bytes, or None when there is no such file."""
    target = Path(path)
    return hashlib.sha256(target.read_bytes()).hexdigest() if target.is_file() else None


def source_digest(folder: str | Path, pattern: str = "*.py") -> str:
    """SHA-256 over the sorted names and bytes of ``folder``'s source files: a code version for local runs."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).rglob(pattern)):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def trainer_arguments(
    *,
    training_set_uri: str,
    params_file: str,
    model_name: str,
    output_json: str,
    run_name: str | None = None,
    idempotency_key: str | None = None,
    airflow_ids: AirflowIds | None = None,
    params_sha256: str | None = None,
    experiment_name: str | None = None,
) -> list[str]:
    """Return the trainer's command-line arguments (identical for the local, Kubernetes and Vertex backends)."""
    args = [
        "--training-set-uri", training_set_uri,
        "--params-file", params_file,
        "--model-name", model_name,
        "--output-json", output_json,
    ]  # fmt: skip
    if run_name:
        args += ["--run-name", run_name]
    if experiment_name:
        args += ["--experiment-name", experiment_name]
    if idempotency_key:
        args += ["--idempotency-key", idempotency_key]
    if params_sha256:
        args += ["--expect-params-sha256", params_sha256]
    if airflow_ids is not None:
        args += ["--dag-id", airflow_ids.dag_id, "--dag-run-id", airflow_ids.run_id, "--task-id", airflow_ids.task_id]
        if airflow_ids.try_number is not None:
            args += ["--try-number", str(airflow_ids.try_number)]
        args += ["--map-index", str(airflow_ids.map_index)]
    return args


def argument_value(arguments: Sequence[str] | None, flag: str) -> str | None:
    """Return the value that follows ``flag`` in an argument list (e.g. a pod's ``args``)."""
    args = list(arguments or [])
    for i, arg in enumerate(args[:-1]):
        if arg == flag:
            return args[i + 1]
    return None


@dataclass(frozen=True)
class TrainerLaunch:
    """Everything one backend needs to start the trainer for one task instance.

    :param model_name: registered model name.
    :param training_set_uri: the snapshot (folder or ``data.parquet``).
    :param training_set_hash: the snapshot's content hash (its manifest's ``hash``).
    :param params_file: the params file as the trainer sees it (a path on the worker or in the image).
    :param params_hash: SHA-256 of the params file on the worker.
    :param code_version: what identifies the trainer's code (the image reference, or a source digest).
    :param airflow: the task instance's ids; None outside Airflow (then there is no key).
    :param run_name: MLflow run name.
    """

    model_name: str
    training_set_uri: str
    training_set_hash: str
    params_file: str
    params_hash: str
    code_version: str
    airflow: AirflowIds | None = None
    run_name: str | None = None

    @property
    def idempotency_key(self) -> str | None:
        """The attempt's key (see :func:`idempotency_key`), or None outside Airflow."""
        if self.airflow is None:
            return None
        return idempotency_key(
            dag_id=self.airflow.dag_id,
            run_id=self.airflow.run_id,
            task_id=self.airflow.task_id,
            map_index=self.airflow.map_index,
            training_set_hash=self.training_set_hash,
            params_hash=self.params_hash,
            code_version=self.code_version,
        )

    def arguments(self, output_json: str, *, check_params: bool) -> list[str]:
        """The trainer's arguments; ``check_params`` makes it refuse a params file with another digest."""
        return trainer_arguments(
            training_set_uri=self.training_set_uri,
            params_file=self.params_file,
            model_name=self.model_name,
            output_json=output_json,
            run_name=self.run_name,
            idempotency_key=self.idempotency_key,
            airflow_ids=self.airflow,
            params_sha256=self.params_hash if check_params else None,
        )
