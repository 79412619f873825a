"""The ``dask`` training backend: the same trainer, boosting with ``xgboost.dask`` on a Dask cluster.

* :class:`XGBoostTrainDaskOperator`: a ``distributed.LocalCluster`` of worker *processes* on the Airflow worker,
  started and torn down by the task (or the running scheduler of a ``dask`` connection), with the trainer as a
  subprocess connected to it, as the local backend runs it.
* :class:`XGBoostTrainDaskJobOperator`: a ``DaskJob`` of the dask-kubernetes operator: a scheduler and (GPU)
  workers from the trainer image, and a runner pod running the trainer's entry point against them. The job's
  name comes from the task instance (never the try), so a retry finds its own job: it waits for a running one,
  adopts a successful one and replaces a failed one. A killed task deletes its job.

Both pass ``--engine dask`` to ``python -m include.trainer``; params, MLflow run, lineage tags, registration and
holdout metrics are the trainer's, as for every backend, and the result is read back from MLflow by the key.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from mlops_provider.exceptions import TrainingFailedError
from mlops_provider.links.mlflow import MlflowModelVersionLink, MlflowRunLink
from mlops_provider.operators.training_base import DEFAULT_PARAMS_FILE, TRAINING_TEMPLATE_FIELDS, XGBoostTrainMixin
from mlops_provider.operators.training_local import XGBoostTrainLocalOperator
from mlops_provider.payloads import TrainingResult
from mlops_provider.settings import get_settings
from mlops_provider.training.daskjob import IDEMPOTENCY_ANNOTATION, DaskJobState, JobStatus, dask_job_name
from mlops_provider.training.launch import RESULT_PATH, label_value
from mlops_provider.utils.deferrable import default_deferrable
from mlops_provider.utils.faults import fault_point

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops_provider.hooks.dask import DaskJobHook

#: The trainer's engine flag for every dask run.
DASK_ENGINE_ARGS = ("--engine", "dask")
DEFAULT_GPU_NODE_SELECTOR = {"nvidia.com/gpu.present": "true"}
DEFAULT_GPU_TOLERATIONS = ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},)


class XGBoostTrainDaskOperator(XGBoostTrainLocalOperator):
    """Train on a Dask cluster of worker processes on this machine (or a running scheduler), then return the version.

    :param model_name: registered model name. (templated)
    :param training_set: the training-set manifest (``FeastTrainingSetOperator``'s XCom) or its URI. (templated)
    :param params_file: trainer parameter file, relative to the project root. (templated)
    :param run_name: MLflow run name; default ``<model_name>-<logical date>``. (templated)
    :param mlflow_conn_id: MLflow connection; default ``[mlops] mlflow_conn_id``. (templated)
    :param render_only: write the command line to ``<local_root>/render/`` and return it, run nothing.
    :param code_version: code identity in the idempotency key; default a digest of the trainer's sources.
    :param n_workers: worker processes of the ``LocalCluster`` (one thread each).
    :param worker_memory_limit: memory limit per worker process (``"4GiB"``, ``"auto"``: a share of the machine).
    :param dask_conn_id: a ``dask`` connection naming a running scheduler to train on instead; None starts a
        ``LocalCluster``. (templated)
    """

    backend = "dask"
    template_fields = (*TRAINING_TEMPLATE_FIELDS, "dask_conn_id")

    def __init__(
        self,
        *,
        n_workers: int = 2,
        worker_memory_limit: str = "auto",
        dask_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if int(n_workers) < 1:
            raise ValueError(f"n_workers must be at least 1, got {n_workers!r}")
        self.n_workers = int(n_workers)
        self.worker_memory_limit = worker_memory_limit
        self.dask_conn_id = dask_conn_id
        self._cluster: Any = None
        self._scheduler_address: str | None = None

    def command(self, context: Context | None) -> dict[str, Any]:
        """The local backend's command line plus ``--engine dask`` and the scheduler this try started or names."""
        command = super().command(context)
        address = self._scheduler_address or f"<the LocalCluster of {self.n_workers} workers this task starts>"
        command["argv"] = [*command["argv"], *DASK_ENGINE_ARGS, "--dask-scheduler", address]
        command["n_workers"] = None if self.dask_conn_id else self.n_workers
        return command

    def execute(self, context: Context) -> TrainingResult | dict[str, Any]:
        """Start (or reach) the cluster, run the trainer against it, close the cluster, return the version."""
        if self.render_only:
            return self.render(context)
        with self.cluster() as address:
            self._scheduler_address = address
            return super().execute(context)

    @contextmanager
    def cluster(self) -> Iterator[str]:
        """Yield the scheduler address: the connection's, or a ``LocalCluster`` closed on the way out."""
        if self.dask_conn_id:
            from mlops_provider.hooks.dask import DaskHook

            address = DaskHook(self.dask_conn_id).scheduler_address
            self.log.info("Training on the Dask scheduler of connection %s at %s", self.dask_conn_id, address)
            yield address
            return
        from distributed import LocalCluster

        self.log.info("Starting a LocalCluster of %s worker processes (1 thread each).", self.n_workers)
        self._cluster = LocalCluster(
            n_workers=self.n_workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            scheduler_port=0,
            dashboard_address=None,
            memory_limit=self.worker_memory_limit,
            silence_logs=logging.WARNING,
            # Workers of a killed task lose their scheduler with it; they exit instead of waiting forever.
            death_timeout=60,
        )
        try:
            yield self._cluster.scheduler_address
        finally:
            self._close_cluster()

    def _close_cluster(self) -> None:
        cluster, self._cluster = self._cluster, None
        if cluster is not None:
            cluster.close()
            self.log.info("Closed the LocalCluster.")

    def on_kill(self) -> None:
        """Stop the trainer and close the cluster's worker processes."""
        super().on_kill()
        self._close_cluster()


class XGBoostTrainDaskJobOperator(XGBoostTrainMixin, BaseOperator):
    """Train in a ``DaskJob`` (dask-kubernetes operator) on (GPU) workers and return the registered version.

    :param model_name: registered model name. (templated)
    :param training_set: the training-set manifest or its URI (in storage the cluster reaches). (templated)
    :param params_file: parameter file path inside the image; the worker's copy gives the digest the trainer
        checks. (templated)
    :param run_name: MLflow run name; default the model name. (templated)
    :param mlflow_conn_id: MLflow connection the result is read from. (templated)
    :param render_only: write the DaskJob to ``<local_root>/render/`` and return it, submit nothing.
    :param code_version: code identity in the idempotency key; default the image reference.
    :param n_workers: Dask worker pods.
    :param worker_cpu: CPU request and limit of each worker (its thread count too).
    :param worker_memory: memory request and limit of each worker.
    :param gpus_per_worker: ``nvidia.com/gpu`` limit of each worker; 0 trains on CPU (no GPU selector then).
    :param mlflow_tracking_uri: tracking server the runner reaches; default the connection's. (templated)
    :param mlflow_registry_uri: a separate registry, if any. (templated)
    :param mlflow_credentials_secret: Secret with the MLflow credentials, mounted with ``envFrom``. (templated)
    :param extra_secrets: more Secrets mounted with ``envFrom`` (storage credentials the workers need).
    :param image: trainer image; default ``[mlops] trainer_image``. (templated)
    :param namespace: default ``[mlops] namespace``. (templated)
    :param kubernetes_conn_id: default ``[mlops] kubernetes_conn_id``. (templated)
    :param deferrable: wait in the triggerer; default ``[operators] default_deferrable``.
    :param poll_interval: seconds between status reads.
    :param timeout_seconds: how long the job may take from submission to its end.
    """

    backend = "dask"
    template_fields: Sequence[str] = (
        *TRAINING_TEMPLATE_FIELDS,
        "image",
        "namespace",
        "kubernetes_conn_id",
        "mlflow_tracking_uri",
        "mlflow_registry_uri",
        "mlflow_credentials_secret",
    )
    template_fields_renderers = {"training_set": "json"}
    operator_extra_links = (MlflowRunLink(), MlflowModelVersionLink())
    ui_color = "#c7e9c0"

    def __init__(
        self,
        *,
        model_name: str,
        training_set: dict[str, Any] | str,
        params_file: str = DEFAULT_PARAMS_FILE,
        run_name: str | None = None,
        mlflow_conn_id: str | None = None,
        render_only: bool = False,
        code_version: str | None = None,
        n_workers: int = 2,
        worker_cpu: str = "4",
        worker_memory: str = "16Gi",
        gpus_per_worker: int = 1,
        mlflow_tracking_uri: str | None = None,
        mlflow_registry_uri: str | None = None,
        mlflow_credentials_secret: str | None = "mlflow-credentials",
        extra_secrets: Sequence[str] = (),
        gpu_node_selector: dict[str, str] | None = None,
        gpu_tolerations: Sequence[dict[str, Any]] | None = None,
        image: str | None = None,
        namespace: str | None = None,
        kubernetes_conn_id: str | None = None,
        deferrable: bool | None = None,
        poll_interval: float = 10.0,
        timeout_seconds: int = 6 * 3600,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._init_training(
            model_name=model_name,
            training_set=training_set,
            params_file=params_file,
            run_name=run_name,
            mlflow_conn_id=mlflow_conn_id,
            render_only=render_only,
            code_version=code_version,
        )
        if int(n_workers) < 1:
            raise ValueError(f"n_workers must be at least 1, got {n_workers!r}")
        self.n_workers = int(n_workers)
        self.worker_cpu = str(worker_cpu)
        self.worker_memory = str(worker_memory)
        self.gpus_per_worker = int(gpus_per_worker)
        self.mlflow_tracking_uri = mlflow_tracking_uri
        self.mlflow_registry_uri = mlflow_registry_uri
        self.mlflow_credentials_secret = mlflow_credentials_secret
        self.extra_secrets = list(extra_secrets)
        self.gpu_node_selector = dict(gpu_node_selector if gpu_node_selector is not None else DEFAULT_GPU_NODE_SELECTOR)
        self.gpu_tolerations = [
            dict(t) for t in (gpu_tolerations if gpu_tolerations is not None else DEFAULT_GPU_TOLERATIONS)
        ]
        self.image = image
        self.namespace = namespace
        self.kubernetes_conn_id = kubernetes_conn_id
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.poll_interval = poll_interval
        self.timeout_seconds = timeout_seconds
        self._job_name: str | None = None

    # ------------------------------------------------------------------ spec
    def _resolve_defaults(self) -> None:
        """Fill image, namespace and connection from ``[mlops]`` at run time (never at DAG parse time)."""
        settings = get_settings()
        self.image = self.image or settings.trainer_image
        self.namespace = self.namespace or settings.namespace
        self.kubernetes_conn_id = self.kubernetes_conn_id or settings.kubernetes_conn_id

    def resolved_code_version(self) -> str:
        """``code_version``, else the trainer image reference (what the runner and workers run)."""
        return self.code_version or str(self.image or get_settings().trainer_image)

    @property
    def dask_hook(self) -> DaskJobHook:
        """The DaskJob hook of this operator's connection and namespace."""
        from mlops_provider.hooks.dask import DaskJobHook

        return DaskJobHook(kubernetes_conn_id=self.kubernetes_conn_id, namespace=self.namespace)

    def job_name(self, context: Context | None) -> str:
        """The job of this task instance (dag, run, task, map index; never the try)."""
        ti = context["ti"] if context else None
        if ti is None:
            return dask_job_name(self.model_name, "render", "render", self.task_id, -1)
        map_index = getattr(ti, "map_index", None)
        return dask_job_name(
            self.model_name, ti.dag_id, str(context["run_id"]) if context else "", ti.task_id,
            -1 if map_index is None else int(map_index),
        )  # fmt: skip

    def build_dask_job(self, context: Context | None) -> dict[str, Any]:
        """The DaskJob this task instance submits (no secrets in it: credentials come from Secrets)."""
        from mlops_provider.training.manifests import dask_job_manifest

        self._resolve_defaults()
        launch = self.trainer_launch(context)
        env = {
            "MLFLOW_TRACKING_URI": self.mlflow_tracking_uri or self.mlflow_hook.tracking_uri,
            "HOME": "/tmp",
            "MPLCONFIGDIR": "/tmp/matplotlib",
        }
        registry = self.mlflow_registry_uri
        if not registry and not self.mlflow_tracking_uri:
            hook = self.mlflow_hook
            registry = hook.registry_uri if hook.registry_uri != hook.tracking_uri else None
        if registry:
            env["MLFLOW_REGISTRY_URI"] = registry
        annotations = {IDEMPOTENCY_ANNOTATION: launch.idempotency_key} if launch.idempotency_key else {}
        return dask_job_manifest(
            name=self.job_name(context),
            namespace=str(self.namespace),
            image=str(self.image),
            trainer_args=[*launch.arguments(RESULT_PATH, check_params=True), *DASK_ENGINE_ARGS],
            env=env,
            secrets=[s for s in [self.mlflow_credentials_secret, *self.extra_secrets] if s],
            n_workers=self.n_workers,
            worker_cpu=self.worker_cpu,
            worker_memory=self.worker_memory,
            gpus_per_worker=self.gpus_per_worker,
            labels={"mlops/model": label_value(self.model_name)},
            annotations=annotations,
            node_selector=self.gpu_node_selector,
            tolerations=self.gpu_tolerations,
        )

    # ------------------------------------------------------------------ execution
    def execute(self, context: Context) -> TrainingResult | dict[str, Any]:
        """Submit (or find) this task's DaskJob, wait for it (or defer), then return the registered version."""
        self._resolve_defaults()
        if self.render_only:
            return self.write_render(context, "daskjob", self.build_dask_job(context))
        if self.mlflow_tracking_uri is None:
            self.require_remote_mlflow()
        self.require_reachable_training_set(f"The Dask workers of {self.model_name}")
        job = self.build_dask_job(context)
        state = self.ensure_job(job)
        self._job_name = state.name
        fault_point("training.after_dask_job_created")
        deadline = time.time() + self.timeout_seconds
        if not state.status.finished and self.deferrable:
            from mlops_provider.triggers.dask import DaskJobTrigger

            self.defer(
                trigger=DaskJobTrigger(
                    name=state.name,
                    namespace=str(self.namespace),
                    kubernetes_conn_id=str(self.kubernetes_conn_id),
                    deadline=deadline,
                    poll_interval=self.poll_interval,
                ),
                method_name="execute_complete",
            )
        while not state.status.finished:
            if time.time() >= deadline:
                return self._outcome(context, state.name, "timeout", state.status)
            time.sleep(self.poll_interval)
            current = self.dask_hook.get_dask_job(state.name)
            if current is None:
                return self._outcome(context, state.name, "deleted", state.status)
            state = DaskJobState.of(current)
        outcome = "successful" if state.status is JobStatus.SUCCESSFUL else "failed"
        return self._outcome(context, state.name, outcome, state.status)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> TrainingResult:
        """Resume after the trigger's event."""
        self._resolve_defaults()
        self._job_name = event["name"]
        return self._outcome(
            context,
            event["name"],
            event["status"],
            JobStatus(event.get("job_status") or "Pending"),
            event.get("message"),
        )

    def ensure_job(self, job: dict[str, Any]) -> DaskJobState:
        """Find or create this task instance's job: the existing one if it runs this attempt and has not failed, else a new one.

        A running job is waited for (the worker that submitted it died), a successful one adopted (its version is
        registered; training again would only burn GPUs), a failed one or one of another attempt (new data,
        params or image) deleted and replaced.
        """
        hook = self.dask_hook
        name, key = job["metadata"]["name"], job["metadata"]["annotations"].get(IDEMPOTENCY_ANNOTATION)
        existing = hook.get_dask_job(name)
        if existing is not None:
            state = DaskJobState.of(existing)
            if state.idempotency_key == key and state.status is not JobStatus.FAILED:
                self.log.info("Reusing DaskJob %s/%s of an earlier try (%s).", self.namespace, name, state.status.value)
                return state
            self.log.info(
                "Replacing DaskJob %s/%s (%s, key %s).", self.namespace, name, state.status.value, state.idempotency_key
            )
            hook.delete_dask_job(name)
            deadline = time.monotonic() + 120
            while hook.get_dask_job(name) is not None:
                if time.monotonic() > deadline:
                    raise TrainingFailedError(f"DaskJob {self.namespace}/{name} was not deleted within 120 s")
                time.sleep(0.5)
        from kubernetes.client.exceptions import ApiException

        try:
            return DaskJobState.of(hook.create_dask_job(job))
        except ApiException as exc:
            if exc.status != 409:
                raise
            # Created by a concurrent start of this same task instance between the read and the create.
            current = hook.get_dask_job(name)
            if current is None:
                raise
            return DaskJobState.of(current)

    def _outcome(
        self, context: Context, name: str, outcome: str, job_status: JobStatus, message: str | None = None
    ) -> TrainingResult:
        from mlops_provider.training.daskjob import runner_failure

        where = f"DaskJob {self.namespace}/{name} for model {self.model_name}"
        if outcome == "successful":
            key = self.trainer_launch(context).idempotency_key
            current = self.dask_hook.get_dask_job(name)
            # The job's own key: an adopted job may come from an earlier start of this task.
            key = (DaskJobState.of(current).idempotency_key if current else None) or key
            if not key:
                raise TrainingFailedError(f"{where} carried no idempotency key")
            return self.finish_training(context, self.registered_result(key, where), dask_job=name)
        if outcome == "failed":
            hook = self.dask_hook
            reason = runner_failure(hook.runner_pod(name), hook.runner_log_tail(name))
            raise TrainingFailedError(f"{where} failed: {reason}")
        if outcome == "timeout":
            self.dask_hook.delete_dask_job(name)
            raise TrainingFailedError(
                f"{where} did not finish within {self.timeout_seconds} s (last status {job_status.value}); it was "
                "deleted. Raise timeout_seconds or check the workers' scheduling (GPU quota, node selector)."
            )
        if outcome == "deleted":
            raise TrainingFailedError(f"{where} was deleted while it ran (last status {job_status.value})")
        raise TrainingFailedError(f"{where}: could not follow the job: {message or outcome}")

    def on_kill(self) -> None:
        """Delete this task's DaskJob (the dask-kubernetes operator removes its cluster and runner with it)."""
        if self._job_name:
            self._resolve_defaults()
            self.dask_hook.delete_dask_job(self._job_name)


def render_dask_training_manifests(
    settings: Any = None, *, model_name: str | None = None, dataset: str = "<dataset>"
) -> list[dict[str, Any]]:
    """Return the DaskJob RBAC and the DaskJob for the current settings (``make render``; no cluster needed)."""
    from mlops_provider.training.manifests import dask_job_rbac

    settings = settings or get_settings()
    operator = XGBoostTrainDaskJobOperator(
        task_id="train",
        model_name=model_name or settings.model_name or "model",
        training_set=f"{settings.data_root.rstrip('/')}/training_sets/{dataset}/<content_hash>/data.parquet",
        mlflow_tracking_uri="https://mlflow.example.com",
        image=settings.trainer_image,
        namespace=settings.namespace,
        kubernetes_conn_id=settings.kubernetes_conn_id,
    )
    return [*dask_job_rbac(settings.namespace), operator.build_dask_job(None)]
