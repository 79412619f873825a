"""Vertex AI custom training jobs through the Google Cloud connection.

The hook owns the ``aiplatform_v1.JobServiceClient``, its credentials and every CustomJob call (create,
get, list by label, cancel), so the training operator and the trigger only decide what to do.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from airflow.sdk import BaseHook

from mlops_provider.payloads import parse_payload

SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
_EXTRA_PREFIX = "extra__google_cloud_platform__"
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


class VertexTrainingHook(BaseHook):
    """Create, follow, find and cancel Vertex AI CustomJobs in one region.

    The ``google_cloud_platform`` connection may carry ``key_path`` or ``keyfile_dict`` (service-account
    JSON) in its extras, with or without the ``extra__google_cloud_platform__`` prefix; without them (or
    without the connection) Application Default Credentials are used (workload identity, gcloud login).

    :param gcp_conn_id: Google Cloud connection id (None: Application Default Credentials).
    :param region: the jobs' region, which is also the API endpoint.
    """

    conn_name_attr = "gcp_conn_id"
    default_conn_name = "google_cloud_default"
    conn_type = "google_cloud_platform"
    hook_name = "Google Cloud (Vertex AI training)"

    def __init__(self, gcp_conn_id: str | None = default_conn_name, region: str = "us-central1") -> None:
        super().__init__()
        self.gcp_conn_id = gcp_conn_id
        self.region = region
        self._client: Any = None

    # ------------------------------------------------------------------ connection
    def _extras(self) -> dict[str, Any]:
        if not self.gcp_conn_id:
            return {}
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            extras = self.get_connection(self.gcp_conn_id).extra_dejson or {}
        except AirflowNotFoundException:
            return {}
        return {k.removeprefix(_EXTRA_PREFIX): v for k, v in extras.items()}

    def get_credentials(self) -> Any:
        """The connection's service-account credentials, or Application Default Credentials."""
        import google.auth
        from google.oauth2 import service_account

        extras = self._extras()
        if extras.get("keyfile_dict"):
            info = parse_payload(extras["keyfile_dict"], name=f"connection {self.gcp_conn_id!r} keyfile_dict")
            return service_account.Credentials.from_service_account_info(info, scopes=SCOPES)
        if extras.get("key_path"):
            return service_account.Credentials.from_service_account_file(extras["key_path"], scopes=SCOPES)
        credentials, _ = google.auth.default(scopes=SCOPES)
        return credentials

    def build_client(self) -> Any:
        """A new ``aiplatform_v1.JobServiceClient`` for the hook's region and credentials."""
        from google.cloud import aiplatform_v1

        return aiplatform_v1.JobServiceClient(
            credentials=self.get_credentials(),
            client_options={"api_endpoint": f"{self.region}-aiplatform.googleapis.com"},
        )

    def get_conn(self) -> Any:
        """The hook's JobServiceClient (built once)."""
        if self._client is None:
            self._client = self.build_client()
        return self._client

    # ------------------------------------------------------------------ custom jobs
    def parent(self, project: str) -> str:
        """``projects/<project>/locations/<region>``."""
        return f"projects/{project}/locations/{self.region}"

    def create_custom_job(self, project: str, spec: Mapping[str, Any]) -> str:
        """Submit a CustomJob given in its REST/JSON form; return its resource name."""
        from google.cloud import aiplatform_v1

        job = aiplatform_v1.CustomJob.from_json(json.dumps(spec))
        created = self.get_conn().create_custom_job(parent=self.parent(project), custom_job=job)
        return str(created.name)

    def get_custom_job(self, name: str) -> Any:
        """The CustomJob ``name`` as the API returns it."""
        return self.get_conn().get_custom_job(name=name)

    def get_job_outcome(self, name: str) -> tuple[str, str]:
        """``(status, message)`` of CustomJob ``name`` (see :func:`job_outcome`)."""
        return job_outcome(self.get_custom_job(name))

    def find_custom_job(self, project: str, labels: Mapping[str, str]) -> str | None:
        """The name of a running or succeeded CustomJob carrying every label in ``labels``, or None."""
        query = " AND ".join(f"labels.{key}={value}" for key, value in labels.items())
        for job in self.get_conn().list_custom_jobs(request={"parent": self.parent(project), "filter": query}):
            if job_outcome(job)[0] in ("running", "success"):
                return str(job.name)
        return None

    def cancel_custom_job(self, name: str) -> None:
        """Ask Vertex AI to cancel CustomJob ``name`` (it ends in ``JOB_STATE_CANCELLED``)."""
        self.get_conn().cancel_custom_job(name=name)

    def test_connection(self) -> tuple[bool, str]:
        """Check that credentials can be obtained (the UI's Test button)."""
        try:
            self.get_credentials()
        except Exception as exc:
            return False, f"No Google Cloud credentials: {type(exc).__name__}: {exc}"
        return True, "Google Cloud credentials found."
