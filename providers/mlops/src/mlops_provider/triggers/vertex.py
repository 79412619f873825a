"""Wait for a Vertex AI CustomJob in the triggerer, and build the aiplatform client the operator uses."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

_TERMINAL = {
    "JOB_STATE_SUCCEEDED": "success",
    "JOB_STATE_FAILED": "failed",
    "JOB_STATE_CANCELLED": "cancelled",
    "JOB_STATE_EXPIRED": "failed",
    "JOB_STATE_PARTIALLY_SUCCEEDED": "failed",
}


def job_outcome(job: Any) -> tuple[str, str]:
    """Map a CustomJob to ``(status, message)``: ``running``, ``success``, ``failed`` or ``cancelled``."""
    state = getattr(job.state, "name", str(job.state))
    status = _TERMINAL.get(state, "running")
    error = getattr(job, "error", None)
    message = (getattr(error, "message", "") or "") if error is not None else ""
    return status, message or state


def vertex_job_client(gcp_conn_id: str | None, region: str) -> Any:
    """An ``aiplatform_v1.JobServiceClient`` for ``region`` with the connection's (or default) credentials.

    The ``google_cloud_platform`` connection may carry ``key_path`` or ``keyfile_dict`` (service-account
    JSON) in its extras, with or without the ``extra__google_cloud_platform__`` prefix; without them (or
    without the connection) Application Default Credentials are used (workload identity, gcloud login).
    """
    from google.cloud import aiplatform_v1

    credentials = _credentials(gcp_conn_id)
    return aiplatform_v1.JobServiceClient(
        credentials=credentials, client_options={"api_endpoint": f"{region}-aiplatform.googleapis.com"}
    )


def _credentials(gcp_conn_id: str | None) -> Any:
    import google.auth
    from google.oauth2 import service_account

    scopes = ["https://www.googleapis.com/auth/cloud-platform"]
    extras: dict[str, Any] = {}
    if gcp_conn_id:
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            extras = BaseHook.get_connection(gcp_conn_id).extra_dejson or {}
        except AirflowNotFoundException:
            extras = {}
    extras = {k.removeprefix("extra__google_cloud_platform__"): v for k, v in extras.items()}
    if extras.get("keyfile_dict"):
        info = extras["keyfile_dict"]
        info = json.loads(info) if isinstance(info, str) else info
        return service_account.Credentials.from_service_account_info(info, scopes=scopes)
    if extras.get("key_path"):
        return service_account.Credentials.from_service_account_file(extras["key_path"], scopes=scopes)
    credentials, _ = google.auth.default(scopes=scopes)
    return credentials


class VertexCustomJobTrigger(BaseTrigger):
    """Poll a Vertex AI CustomJob until it ends; yield ``{"status", "job_name", "message"}`` once.

    :param job_name: ``projects/.../locations/.../customJobs/<id>``.
    :param gcp_conn_id: Google Cloud connection (or None for Application Default Credentials).
    :param region: the job's region (the API endpoint).
    :param poll_interval: seconds between polls.
    :param timeout: seconds after which a ``timeout`` event is yielded (None: no deadline).
    """

    def __init__(
        self,
        *,
        job_name: str,
        gcp_conn_id: str | None,
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
        """Poll without blocking the event loop (the SDK call runs in an executor)."""
        loop = asyncio.get_running_loop()
        try:
            client = await loop.run_in_executor(None, vertex_job_client, self.gcp_conn_id, self.region)
            while True:
                job = await loop.run_in_executor(None, lambda: client.get_custom_job(name=self.job_name))
                status, message = job_outcome(job)
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
