"""Deferrable wait until a DaskJob finishes (``status.jobStatus`` Successful or Failed), read by the triggerer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from mlops_provider.training.daskjob import DaskJobState, JobStatus


class DaskJobTrigger(BaseTrigger):
    """Poll a DaskJob until it succeeds, fails, disappears or ``deadline`` passes.

    :param name: DaskJob name.
    :param namespace: its namespace.
    :param kubernetes_conn_id: Airflow Kubernetes connection.
    :param deadline: UNIX time after which the wait ends with a ``timeout`` event.
    :param poll_interval: seconds between reads.
    """

    def __init__(
        self, *, name: str, namespace: str, kubernetes_conn_id: str, deadline: float, poll_interval: float = 10.0
    ) -> None:
        super().__init__()
        self.name = name
        self.namespace = namespace
        self.kubernetes_conn_id = kubernetes_conn_id
        self.deadline = deadline
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the dotted path and every constructor argument."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "name": self.name,
                "namespace": self.namespace,
                "kubernetes_conn_id": self.kubernetes_conn_id,
                "deadline": self.deadline,
                "poll_interval": self.poll_interval,
            },
        )

    def _read(self) -> dict | None:
        from mlops_provider.hooks.dask import DaskJobHook

        return DaskJobHook(kubernetes_conn_id=self.kubernetes_conn_id, namespace=self.namespace).get_dask_job(self.name)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Yield exactly one event: ``successful``, ``failed``, ``deleted``, ``timeout`` or ``error``."""
        base = {"name": self.name, "namespace": self.namespace}
        last = JobStatus.PENDING
        try:
            while True:
                # The Kubernetes client is synchronous: keep it off the triggerer's event loop.
                job = await asyncio.to_thread(self._read)
                if job is None:
                    yield TriggerEvent({**base, "status": "deleted", "job_status": last.value})
                    return
                state = DaskJobState.of(job)
                last = state.status
                if state.status.finished:
                    outcome = "successful" if state.status is JobStatus.SUCCESSFUL else "failed"
                    yield TriggerEvent({**base, "status": outcome, "job_status": last.value})
                    return
                if time.time() >= self.deadline:
                    yield TriggerEvent({**base, "status": "timeout", "job_status": last.value})
                    return
                await asyncio.sleep(min(self.poll_interval, max(0.0, self.deadline - time.time())))
        except Exception as exc:  # one error event instead of a crashed trigger
            yield TriggerEvent(
                {**base, "status": "error", "job_status": last.value, "message": f"{type(exc).__name__}: {exc}"}
            )
