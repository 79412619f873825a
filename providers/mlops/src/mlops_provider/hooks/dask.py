"""Dask: a scheduler reached through a ``dask`` connection, and DaskJobs of the dask-kubernetes operator.

* :class:`DaskHook` (connection type ``dask``, default ``dask_default``): the address of a running scheduler
  (``host`` ``tcp://scheduler.example:8786`` or host + port) the ``dask`` training backend trains on instead of
  starting a ``LocalCluster``.
* :class:`DaskJobHook`: ``DaskJob`` objects (``kubernetes.dask.org/v1``) and their runner pod through the
  Airflow Kubernetes connection and the cncf.kubernetes ``KubernetesHook`` (no dask-kubernetes package needed
  in Airflow's environment: a DaskJob is a custom object). Reading a DaskJob's status is
  :mod:`mlops_provider.training.daskjob`.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from airflow.sdk import BaseHook

from mlops_provider.hooks.kubernetes import KubernetesCustomObjectHook
from mlops_provider.training.daskjob import GROUP, KIND, PLURAL, VERSION, runner_pod_name

DEFAULT_SCHEDULER_PORT = 8786


class DaskHook(BaseHook):
    """The address of a running Dask scheduler.

    :param dask_conn_id: connection of type ``dask``: ``host`` is the scheduler (``tcp://...`` or a host name),
        ``port`` its port (default 8786).
    """

    conn_name_attr = "dask_conn_id"
    default_conn_name = "dask_default"
    conn_type = "dask"
    hook_name = "Dask scheduler"

    def __init__(self, dask_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.dask_conn_id = dask_conn_id

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Only host and port mean something for a scheduler."""
        return {
            "hidden_fields": ["schema", "login", "password", "extra"],
            "relabeling": {"host": "Scheduler (tcp://host or host)"},
            "placeholders": {"host": "tcp://dask-scheduler.example:8786", "port": str(DEFAULT_SCHEDULER_PORT)},
        }

    @cached_property
    def scheduler_address(self) -> str:
        """``tcp://host:port`` of the connection."""
        conn = self.get_connection(self.dask_conn_id)
        host = (conn.host or "").strip()
        if not host:
            raise ValueError(f"Dask connection {self.dask_conn_id!r} has no host: set it to the scheduler's address")
        if "://" not in host:
            host = f"tcp://{host}"
        if conn.port and host.count(":") < 2:
            host = f"{host}:{conn.port}"
        elif host.count(":") < 2:
            host = f"{host}:{DEFAULT_SCHEDULER_PORT}"
        return host

    def get_conn(self) -> Any:
        """A ``distributed.Client`` connected to the scheduler (close it when done)."""
        from distributed import Client

        return Client(self.scheduler_address, timeout=30, set_as_default=False)

    def test_connection(self) -> tuple[bool, str]:
        """Connect and count the workers (the UI's Test button)."""
        try:
            client = self.get_conn()
            try:
                workers = len(client.scheduler_info(n_workers=-1)["workers"])
            finally:
                client.close()
        except Exception as exc:  # the Test button shows any failure as text
            return False, f"Cannot reach the Dask scheduler at {self.scheduler_address}: {exc}"
        return True, f"Connected to {self.scheduler_address}; {workers} worker(s)."


class DaskJobHook(KubernetesCustomObjectHook):
    """Create, read and delete DaskJobs, and read their runner pod.

    :param kubernetes_conn_id: Airflow connection of type ``kubernetes`` (default ``[mlops] kubernetes_conn_id``).
    :param namespace: default namespace (default ``[mlops] namespace``).
    """

    hook_name = "Dask on Kubernetes (DaskJob)"

    def test_connection(self) -> tuple[bool, str]:
        """List DaskJobs in the namespace (fails when the dask-kubernetes CRDs are not installed)."""
        try:
            items = self.get_conn().list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL)["items"]
        except Exception as exc:  # the Test button shows any failure as text
            return (
                False,
                f"Cannot list DaskJobs in {self.namespace} (is the dask-kubernetes operator installed?): {exc}",
            )
        return True, f"Connected; {len(items)} DaskJob(s) in namespace {self.namespace}."

    def get_dask_job(self, name: str, namespace: str | None = None) -> dict | None:
        """The DaskJob, or None when there is none."""
        return self.read_custom_object(GROUP, VERSION, PLURAL, name, namespace or self.namespace)

    def create_dask_job(self, body: dict, namespace: str | None = None) -> dict:
        """Create the DaskJob ``body``."""
        if body.get("kind") != KIND:
            raise ValueError(f"Expected a {KIND} manifest, got kind {body.get('kind')!r}.")
        namespace = namespace or body.get("metadata", {}).get("namespace") or self.namespace
        self.log.info("Creating DaskJob %s/%s", namespace, body["metadata"]["name"])
        return self.kubernetes_hook.create_custom_object(
            group=GROUP, version=VERSION, plural=PLURAL, body=body, namespace=namespace
        )

    def delete_dask_job(self, name: str, namespace: str | None = None) -> bool:
        """Delete the DaskJob (the operator's garbage collection removes its cluster and runner); False if absent."""
        deleted = self.delete_custom_object_if_exists(GROUP, VERSION, PLURAL, name, namespace or self.namespace)
        if deleted:
            self.log.info("Deleted DaskJob %s/%s", namespace or self.namespace, name)
        return deleted

    def runner_pod(self, job_name: str, namespace: str | None = None) -> Any | None:
        """The job's runner pod (``<job>-runner``, a ``V1Pod``), or None when there is none (yet)."""
        from kubernetes.client.exceptions import ApiException

        try:
            return self.kubernetes_hook.core_v1_client.read_namespaced_pod(
                runner_pod_name(job_name), namespace or self.namespace
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def runner_log_tail(self, job_name: str, namespace: str | None = None, lines: int = 20) -> str:
        """The last ``lines`` of the runner's log ('' when it has none)."""
        from kubernetes.client.exceptions import ApiException

        try:
            return str(
                self.kubernetes_hook.core_v1_client.read_namespaced_pod_log(
                    runner_pod_name(job_name), namespace or self.namespace, tail_lines=lines
                )
            )
        except ApiException:
            return ""
