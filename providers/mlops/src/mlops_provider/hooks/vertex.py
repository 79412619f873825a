"""Vertex AI custom training jobs through the Google provider's ``CustomJobHook``.

The provider's hook owns the connection, the credentials (key file, key JSON, impersonation, workload
identity, Application Default Credentials) and the ``JobServiceClient``; this subclass adds what the training
operator needs on top: the lookup of a job by its idempotency label, the mapping of a job's state to an
outcome, and calls addressed by the job's resource name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow.providers.google.cloud.hooks.vertex_ai.custom_job import CustomJobHook

if TYPE_CHECKING:
    from google.cloud.aiplatform_v1 import CustomJob, JobServiceClient

#: Connection extra naming another Vertex AI API endpoint (``http(s)://host:port``): a Private Service
#: Connect endpoint, or a fake Vertex AI on loopback in tests. It is spoken to over REST.
ENDPOINT_EXTRA = "vertex_api_endpoint"
#: Vertex job states mapped to the outcome the operator acts on; anything else is still ``running``.
TERMINAL_STATES = {
    "JOB_STATE_SUCCEEDED": "success",
    "JOB_STATE_FAILED": "failed",
    "JOB_STATE_CANCELLED": "cancelled",
    "JOB_STATE_EXPIRED": "failed",
    "JOB_STATE_PARTIALLY_SUCCEEDED": "failed",
}


def job_outcome(job: Any) -> tuple[str, str]:
    """Map a CustomJob to ``(status, message)``: ``running``, ``success``, ``failed`` or ``cancelled``."""
    state = getattr(job.state, "name", str(job.state))
    status = TERMINAL_STATES.get(state, "running")
    error = getattr(job, "error", None)
    message = (getattr(error, "message", "") or "") if error is not None else ""
    return status, message or state


class VertexTrainingHook(CustomJobHook):
    """Create, follow, find and cancel Vertex AI CustomJobs in one region.

    The ``google_cloud_platform`` connection is the Google provider's (``key_path``, ``keyfile_dict``,
    ``is_anonymous``, ``project``, ...); :data:`ENDPOINT_EXTRA` in its extras sends the calls to another endpoint.

    :param gcp_conn_id: Google Cloud connection id.
    :param region: the jobs' region, which also picks the regional API endpoint.
    """

    hook_name = "Google Cloud (Vertex AI training)"

    def __init__(self, gcp_conn_id: str = "google_cloud_default", region: str = "us-central1", **kwargs: Any) -> None:
        super().__init__(gcp_conn_id=gcp_conn_id, **kwargs)
        self.region = region

    def get_job_service_client(self, region: str | None = None) -> JobServiceClient:
        """The provider's ``JobServiceClient``, or a REST one for the connection's :data:`ENDPOINT_EXTRA`."""
        endpoint = self._get_field(ENDPOINT_EXTRA, None)
        if not endpoint:
            return super().get_job_service_client(region)
        from google.api_core.client_options import ClientOptions
        from google.cloud.aiplatform_v1 import JobServiceClient

        return JobServiceClient(
            credentials=self.get_credentials(), client_options=ClientOptions(api_endpoint=endpoint), transport="rest"
        )

    def _job_path(self, name: str) -> dict[str, str]:
        from google.cloud.aiplatform_v1 import JobServiceClient

        parts = JobServiceClient.parse_custom_job_path(name)
        if not parts:
            raise ValueError(f"{name!r} is not a CustomJob name (projects/<p>/locations/<region>/customJobs/<id>)")
        return parts

    def submit_custom_job(self, project: str, spec: Mapping[str, Any]) -> str:
        """Submit a CustomJob given in its REST/JSON form; return its resource name."""
        import json

        from google.cloud.aiplatform_v1 import CustomJob

        job = CustomJob.from_json(json.dumps(spec))
        created = self.create_custom_job(project_id=project, region=self.region, custom_job=job)
        return str(created.name)

    def get_custom_job_by_name(self, name: str) -> CustomJob:
        """The CustomJob ``name`` as the API returns it."""
        parts = self._job_path(name)
        return self.get_custom_job(
            project_id=parts["project"], region=parts["location"], custom_job=parts["custom_job"]
        )

    def get_job_outcome(self, name: str) -> tuple[str, str]:
        """``(status, message)`` of CustomJob ``name`` (see :func:`job_outcome`)."""
        return job_outcome(self.get_custom_job_by_name(name))

    def find_custom_job(self, project: str, labels: Mapping[str, str]) -> str | None:
        """The name of a running or succeeded CustomJob carrying every label in ``labels``, or None."""
        query = " AND ".join(f"labels.{key}={value}" for key, value in labels.items())
        jobs = self.list_custom_jobs(
            project_id=project, region=self.region, page_size=None, page_token=None, filter=query, read_mask=None
        )
        for job in jobs:
            if job_outcome(job)[0] in ("running", "success"):
                return str(job.name)
        return None

    def cancel_custom_job_by_name(self, name: str) -> None:
        """Ask Vertex AI to cancel CustomJob ``name`` (it ends in ``JOB_STATE_CANCELLED``)."""
        parts = self._job_path(name)
        self.cancel_custom_job(project_id=parts["project"], region=parts["location"], custom_job=parts["custom_job"])
