"""A DaskJob's state as the dask-kubernetes operator records it, read the same way by the worker and the trigger.

The operator (``dask_kubernetes/operator/controller``) writes ``status.jobStatus``: ``JobCreated`` on create,
``ClusterCreated`` once it made the ``DaskCluster`` (named like the job) and the runner pod ``<job>-runner``
(``status.clusterName``, ``status.jobRunnerPodName``), ``Running`` when the runner pod runs (``startTime``),
then ``Successful`` or ``Failed`` from the runner pod's phase (``endTime``), deleting the cluster. The status
has no message: why a job failed is the runner pod's termination message (the trainer writes it) or its log.
"""

from __future__ import annotations

import enum
import hashlib
import re
from dataclasses import dataclass
from typing import Any

GROUP = "kubernetes.dask.org"
VERSION = "v1"
PLURAL = "daskjobs"
KIND = "DaskJob"
#: The idempotency key of the training attempt the job runs (the trainer's ``--idempotency-key``).
IDEMPOTENCY_ANNOTATION = "mlops.io/idempotency-key"
#: Container name of the job runner (the trainer) in ``spec.job.spec``.
RUNNER_CONTAINER = "trainer"


class JobStatus(enum.StrEnum):
    """``status.jobStatus`` values the dask-kubernetes operator sets, plus ``Pending`` before it saw the job."""

    PENDING = "Pending"
    JOB_CREATED = "JobCreated"
    CLUSTER_CREATED = "ClusterCreated"
    RUNNING = "Running"
    SUCCESSFUL = "Successful"
    FAILED = "Failed"

    @property
    def finished(self) -> bool:
        """True once the runner pod ended (the cluster is being deleted)."""
        return self in (JobStatus.SUCCESSFUL, JobStatus.FAILED)


@dataclass(frozen=True)
class DaskJobState:
    """One read of a DaskJob: its status and what identifies the attempt it runs."""

    name: str
    status: JobStatus
    idempotency_key: str | None
    cluster_name: str | None = None
    runner_pod: str | None = None

    @classmethod
    def of(cls, job: dict[str, Any]) -> DaskJobState:
        """Read ``job`` (a DaskJob as the API returns it)."""
        meta, status = job.get("metadata") or {}, job.get("status") or {}
        raw = status.get("jobStatus")
        try:
            job_status = JobStatus(raw) if raw else JobStatus.PENDING
        except ValueError:  # a newer operator's value: treat as not finished, the deadline still applies
            job_status = JobStatus.PENDING
        return cls(
            name=str(meta.get("name")),
            status=job_status,
            idempotency_key=(meta.get("annotations") or {}).get(IDEMPOTENCY_ANNOTATION),
            cluster_name=status.get("clusterName"),
            runner_pod=status.get("jobRunnerPodName"),
        )


def runner_pod_name(job_name: str) -> str:
    """The runner pod the operator creates for ``job_name``."""
    return f"{job_name}-runner"


def dask_job_name(model_name: str, dag_id: str, run_id: str, task_id: str, map_index: int) -> str:
    """The job's name for one task instance: the same on every try (never the try number), DNS-1123, <= 40 chars.

    The cluster gets the job's name, and its scheduler Service ``<name>-scheduler``: short enough for both.
    """
    digest = hashlib.sha256(f"{dag_id}\n{run_id}\n{task_id}\n{map_index}".encode()).hexdigest()[:10]
    stem = re.sub(r"[^a-z0-9-]", "-", model_name.lower()).strip("-")[:22].strip("-") or "model"
    return f"{stem}-train-{digest}"


def runner_failure(pod: Any | None, log_tail: str = "") -> str:
    """Why the runner failed: its container's termination message (the trainer's error), else its log's end."""
    statuses = getattr(getattr(pod, "status", None), "container_statuses", None) or []
    for status in statuses:
        terminated = status.state.terminated if status.state else None
        if terminated is not None and terminated.exit_code != 0:
            said = (terminated.message or "").strip() or log_tail.strip()
            return f"the runner exited with code {terminated.exit_code} ({terminated.reason}): {said or 'no message'}"
    if log_tail.strip():
        return f"the runner's log ends: {log_tail.strip()}"
    return "the runner pod left no message (it may have been deleted)"
