"""Wait for a Vertex AI CustomJob in the triggerer (through :class:`~mlops_provider.hooks.vertex.VertexTrainingHook`).

The provider's own ``CustomJobTrigger`` has no deadline and reports a failed job as an error without the
job's name; this one polls the same hook, stops at a deadline and names the job in every event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from mlops_provider.hooks.vertex import VertexTrainingHook


class VertexCustomJobTrigger(BaseTrigger):
    """Poll a Vertex AI CustomJob until it ends; yield ``{"status", "job_name", "message"}`` once.

    :param job_name: ``projects/.../locations/.../customJobs/<id>``.
    :param gcp_conn_id: Google Cloud connection.
    :param region: the job's region (the API endpoint).
    :param poll_interval: seconds between polls.
    :param timeout: seconds after which a ``timeout`` event is yielded (None: no deadline).
    """

    def __init__(
        self,
        *,
        job_name: str,
        gcp_conn_id: str,
        region: str,
        poll_interval: float = 30.0,
        timeout: float | None = None,
        started_at: float | None = None,
    ) -> None:
        super().__init__()
        self.job_name = job_name
        self.gcp_conn_id = gcp_conn_id
        self.region = region
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.started_at = started_at if started_at is not None else time.time()

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Dotted path and every constructor argument."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_name": self.job_name,
                "gcp_conn_id": self.gcp_conn_id,
                "region": self.region,
                "poll_interval": self.poll_interval,
                "timeout": self.timeout,
                "started_at": self.started_at,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll without blocking the event loop (the connection read and the SDK calls run in an executor)."""
        loop = asyncio.get_running_loop()
        try:
            hook = await loop.run_in_executor(
                None, lambda: VertexTrainingHook(gcp_conn_id=self.gcp_conn_id, region=self.region)
            )
            while True:
                status, message = await loop.run_in_executor(None, hook.get_job_outcome, self.job_name)
                if status != "running":
                    yield TriggerEvent({"status": status, "job_name": self.job_name, "message": message})
                    return
                if self.timeout is not None and time.time() - self.started_at > self.timeout:
                    yield TriggerEvent(
                        {
                            "status": "timeout",
                            "job_name": self.job_name,
                            "message": f"still {message} after {self.timeout}s",
                        }
                    )
                    return
                await asyncio.sleep(self.poll_interval)
        except Exception as exc:
            yield TriggerEvent(
                {"status": "error", "job_name": self.job_name, "message": f"{type(exc).__name__}: {exc}"}
            )
