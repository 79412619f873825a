"""Where the trainer's rows live while it boosts: in this process's memory, or spread over a Dask cluster.

``python -m include.trainer`` runs one code path (params, lineage tags, MLflow run, registration, holdout
metrics) whatever the engine; an engine only supplies the five steps that depend on where the data is:
read the snapshot, split it, find the device, plan the matrices and boost. ``--engine memory`` (the default)
is the local, Kubernetes-pod and Vertex path; ``--engine dask`` is :class:`include.trainer.distributed.DaskEngine`.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any, Protocol

from include.trainer.data import TrainingData, load_training_data, read_manifest
from include.trainer.fit import FitResult, fit, gpu_visible, training_plan

ENGINES = ("memory", "dask")


class TrainingEngine(Protocol):
    """The steps of a training run that depend on where the rows are."""

    name: str

    def read_training_set(self, uri: str) -> tuple[Any, dict[str, Any]]:
        """The snapshot's rows (what this engine reads them through) and its manifest."""

    def prepare(self, rows: Any, manifest: dict[str, Any], params: Mapping[str, Any], task: str) -> TrainingData:
        """The time-ordered train, validation and holdout parts (``params["split"]`` holds the fractions)."""

    def gpu_visible(self) -> bool:
        """Whether the processes that boost see a GPU."""

    def training_plan(self, params: Mapping[str, Any], *, gpu: bool) -> dict[str, Any]:
        """Booster parameters and matrix type for the device."""

    def fit(self, params: Mapping[str, Any], plan: Mapping[str, Any], data: TrainingData) -> FitResult:
        """Boost with early stopping and score validation and holdout."""

    def close(self) -> None:
        """Release what the engine holds (a cluster connection)."""


class InMemoryEngine:
    """The whole snapshot in this process's memory (pandas), one XGBoost process boosting."""

    name = "memory"

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def read_training_set(self, uri: str) -> tuple[Any, dict[str, Any]]:
        # Only the manifest now: prepare reads the rows whole or streams them, by the snapshot's size.
        return uri, read_manifest(uri)

    def prepare(self, rows: Any, manifest: dict[str, Any], params: Mapping[str, Any], task: str) -> TrainingData:
        return load_training_data(rows, manifest, dict(params), task)

    def gpu_visible(self) -> bool:
        return gpu_visible(self.env)

    def training_plan(self, params: Mapping[str, Any], *, gpu: bool) -> dict[str, Any]:
        return training_plan(params, gpu=gpu)

    def fit(self, params: Mapping[str, Any], plan: Mapping[str, Any], data: TrainingData) -> FitResult:
        return fit(params, plan, data)

    def close(self) -> None:
        return None


def training_engine(args: argparse.Namespace, env: Mapping[str, str]) -> TrainingEngine:
    """The engine ``--engine`` names (``dask`` connects to the scheduler now, so a bad address fails first)."""
    if getattr(args, "engine", "memory") == "dask":
        from include.trainer.distributed import DaskEngine

        return DaskEngine.connect(getattr(args, "dask_scheduler", None), env)
    return InMemoryEngine(env)
