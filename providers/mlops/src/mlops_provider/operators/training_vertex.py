"""The trainer as a Vertex AI CustomJob, through :class:`~mlops_provider.hooks.vertex.VertexTrainingHook`.

Chosen by :func:`~mlops_provider.operators.training.training_operator_class` for the ``vertex`` backend.
The job carries the attempt's idempotency key as a label (its digest: labels cannot hold ``/``), so a
restarted or retried task finds the job it already submitted instead of submitting another, and the
result is read back from MLflow by that key once the job succeeded.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from mlops_provider.exceptions import TrainingFailedError
from mlops_provider.links.mlflow import MlflowModelVersionLink, MlflowRunLink
from mlops_provider.operators.training_base import DEFAULT_PARAMS_FILE, TRAINING_TEMPLATE_FIELDS, XGBoostTrainMixin
from mlops_provider.payloads import TrainingResult
from mlops_provider.settings import get_settings
from mlops_provider.training.launch import RESULT_PATH, key_label, label_value
from mlops_provider.utils.deferrable import default_deferrable

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops_provider.hooks.vertex import VertexTrainingHook

#: Label holding the digest of the attempt's idempotency key (the same on every try of the attempt).
KEY_LABEL = "mlops-key"


class XGBoostTrainVertexOperator(XGBoostTrainMixin, BaseOperator):
    """Train and register the XGBoost model as a Vertex AI CustomJob.

    :param model_name: registered model name. (templated)
    :param training_set: the training-set manifest (``FeastTrainingSetOperator``'s XCom) or its URI. (templated)
    :param params_file: parameter file path inside the image; the worker's copy gives the digest. (templated)
    :param run_name: MLflow run name; default the model name. (templated)
    :param mlflow_conn_id: MLflow connection the job logs to and the result is read from. (templated)
    :param render_only: write the CustomJob to ``<local_root>/render/`` and return it, submit nothing.
    :param code_version: code identity in the idempotency key; default the image reference.
    :param image: trainer image; default ``[mlops] trainer_image``. (templated)
    :param gpus: accelerators of the worker (0: CPU only).
    :param gcp_conn_id: Google Cloud connection; default ``[mlops] gcp_conn_id``. (templated)
    :param vertex_project: default ``[mlops] vertex_project``. (templated)
    :param vertex_region: default ``[mlops] vertex_region``. (templated)
    :param vertex_machine_type: the worker's machine type.
    :param vertex_accelerator_type: the worker's accelerator type.
    :param vertex_service_account: service account the CustomJob runs as.
    :param vertex_staging_bucket: ``gs://`` base output directory of the job.
    :param deferrable: wait in the triggerer; default ``[operators] default_deferrable``.
    :param poll_interval: seconds between job status checks.
    :param job_timeout: seconds to wait for the job before cancelling it and failing the task; default the
        task's ``execution_timeout`` (None: wait as long as the job runs).
    """

    backend = "vertex"
    template_fields: Sequence[str] = (
        *TRAINING_TEMPLATE_FIELDS,
        "image",
        "gcp_conn_id",
        "vertex_project",
        "vertex_region",
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
        image: str | None = None,
        gpus: int = 1,
        gcp_conn_id: str | None = None,
        vertex_project: str | None = None,
        vertex_region: str | None = None,
        vertex_machine_type: str = "g2-standard-8",
        vertex_accelerator_type: str = "NVIDIA_L4",
        vertex_service_account: str | None = None,
        vertex_staging_bucket: str | None = None,
        deferrable: bool | None = None,
        poll_interval: float = 10.0,
        job_timeout: float | None = None,
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
        self.image = image
        self.gpus = int(gpus)
        self.gcp_conn_id = gcp_conn_id
        self.vertex_project = vertex_project
        self.vertex_region = vertex_region
        self.vertex_machine_type = vertex_machine_type
        self.vertex_accelerator_type = vertex_accelerator_type
        self.vertex_service_account = vertex_service_account
        self.vertex_staging_bucket = vertex_staging_bucket
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.poll_interval = poll_interval
        self.job_timeout = job_timeout
        self._job_name: str | None = None

    # ------------------------------------------------------------------ configuration
    def resolved_image(self) -> str:
        """``image`` or ``[mlops] trainer_image``."""
        return self.image or get_settings().trainer_image

    def resolved_code_version(self) -> str:
        """``code_version``, else the trainer image reference (what the job runs)."""
        return self.code_version or self.resolved_image()

    def target(self) -> tuple[str, str, str]:
        """``(gcp_conn_id, project, region)`` of the job, from the arguments or ``[mlops]``."""
        settings = get_settings()
        project = self.vertex_project or settings.vertex_project
        if not project:
            raise TrainingFailedError(
                "The vertex backend needs a project: set [mlops] vertex_project or vertex_project="
            )
        return self.gcp_conn_id or settings.gcp_conn_id, project, self.vertex_region or settings.vertex_region

    @cached_property
    def vertex_hook(self) -> VertexTrainingHook:
        """Vertex AI hook for the job's connection and region."""
        from mlops_provider.hooks.vertex import VertexTrainingHook

        conn_id, _, region = self.target()
        return VertexTrainingHook(gcp_conn_id=conn_id, region=region)

    def custom_job_spec(self, context: Context | None) -> dict[str, Any]:
        """The Vertex AI CustomJob (REST/JSON form) this task submits."""
        launch = self.trainer_launch(context)
        hook = self.mlflow_hook
        env = [{"name": "MLFLOW_TRACKING_URI", "value": hook.tracking_uri}]
        if hook.registry_uri != hook.tracking_uri:
            env.append({"name": "MLFLOW_REGISTRY_URI", "value": hook.registry_uri})
        machine: dict[str, Any] = {"machineType": self.vertex_machine_type}
        if self.gpus > 0:
            machine.update({"acceleratorType": self.vertex_accelerator_type, "acceleratorCount": self.gpus})
        container = {
            "imageUri": self.resolved_image(),
            "args": launch.arguments(RESULT_PATH, check_params=True),
            "env": env,
        }
        job_spec: dict[str, Any] = {
            "workerPoolSpecs": [
                {
                    "machineSpec": machine,
                    "replicaCount": "1",
                    "diskSpec": {"bootDiskType": "pd-ssd", "bootDiskSizeGb": 100},
                    "containerSpec": container,
                }
            ]
        }
        if self.vertex_service_account:
            job_spec["serviceAccount"] = self.vertex_service_account
        if self.vertex_staging_bucket:
            job_spec["baseOutputDirectory"] = {
                "outputUriPrefix": f"{self.vertex_staging_bucket.rstrip('/')}/{self.model_name}"
            }
        labels = {"app": "mlops-trainer", "model": label_value(self.model_name)}
        if launch.idempotency_key:
            labels[KEY_LABEL] = key_label(launch.idempotency_key)
        return {"displayName": f"{self.model_name}-train"[:128], "labels": labels, "jobSpec": job_spec}

    # ------------------------------------------------------------------ execution
    def execute(self, context: Context) -> TrainingResult | dict[str, Any]:
        """Submit the CustomJob (or find the one this attempt submitted), wait for it, return the version."""
        if self.render_only:
            return self.write_render(context, "customjob", self.custom_job_spec(context))
        self.require_remote_mlflow()
        self.require_reachable_training_set(f"The Vertex AI job of {self.model_name}")
        conn_id, project, region = self.target()
        spec = self.custom_job_spec(context)
        hook = self.vertex_hook
        job_name = hook.find_custom_job(project, {KEY_LABEL: spec["labels"][KEY_LABEL]})
        if job_name is None:
            job_name = hook.submit_custom_job(project, spec)
            self.log.info("Submitted Vertex AI CustomJob %s.", job_name)
        else:
            self.log.info("Reattaching to Vertex AI CustomJob %s of this attempt.", job_name)
        self._job_name = job_name
        context["ti"].xcom_push(key="vertex_job_name", value=job_name)
        timeout = self.resolved_job_timeout()
        if self.deferrable:
            from mlops_provider.triggers.vertex import VertexCustomJobTrigger

            self.defer(
                trigger=VertexCustomJobTrigger(
                    job_name=job_name,
                    gcp_conn_id=conn_id,
                    region=region,
                    poll_interval=self.poll_interval,
                    timeout=timeout,
                ),
                method_name="execute_complete",
            )
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            state, message = hook.get_job_outcome(job_name)
            if state != "running":
                return self._complete(context, {"status": state, "job_name": job_name, "message": message})
            if deadline is not None and time.monotonic() > deadline:
                event = {"status": "timeout", "job_name": job_name, "message": f"still {message} after {timeout}s"}
                return self._complete(context, event)
            time.sleep(self.poll_interval)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> TrainingResult:
        """Resume after the CustomJob trigger fired."""
        return self._complete(context, event)

    def on_kill(self) -> None:
        """Cancel the CustomJob this task submitted or reattached to."""
        if self._job_name:
            self.log.info("Cancelling Vertex AI CustomJob %s.", self._job_name)
            self.vertex_hook.cancel_custom_job_by_name(self._job_name)

    def resolved_job_timeout(self) -> float | None:
        """``job_timeout``, else the task's ``execution_timeout`` in seconds, else None."""
        if self.job_timeout is not None:
            return float(self.job_timeout)
        return self.execution_timeout.total_seconds() if self.execution_timeout else None

    def _complete(self, context: Context, event: dict[str, Any]) -> TrainingResult:
        job = event.get("job_name")
        if event.get("status") == "timeout" and job:
            # Nobody waits for the job any more: cancel it rather than let it run (and bill) unobserved. A retry
            # finds no live job with this attempt's label and submits a new one.
            self.log.warning("Cancelling Vertex AI CustomJob %s: %s.", job, event.get("message"))
            self.vertex_hook.cancel_custom_job_by_name(job)
        if event.get("status") != "success":
            raise TrainingFailedError(f"Vertex AI CustomJob {job} {event.get('status')}: {event.get('message')}")
        key = self.trainer_launch(context).idempotency_key
        if not key:
            raise TrainingFailedError(f"Vertex AI CustomJob {job} finished outside an Airflow task: no key to read")
        result = self.registered_result(key, f"Vertex AI CustomJob {job}")
        return self.finish_training(context, result, vertex_job_name=job)
