"""Train the XGBoost model on a training-set snapshot, locally, in a Kubernetes GPU pod or on Vertex AI.

All three backends run the same CLI (``python -m include.trainer.train``, see ``include/trainer``) with
the same arguments; the trainer logs to MLflow and registers a model version, tagged with the Airflow
try's idempotency key so a restarted try never registers twice. The operator returns::

    {"run_id", "model_name", "model_version", "model_uri", "artifact_uri", "metrics",
     "training_set_uri", "training_set_hash", "experiment_id", "threshold", "device", "backend", ...}

``render_only=True`` (or :func:`render_training_manifests` for ``make render``) writes the exact pod or
CustomJob spec that would be submitted instead of submitting it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from mlops_provider.exceptions import TrainingFailedError
from mlops_provider.links.mlflow import MlflowModelVersionLink, MlflowRunLink, persist_mlflow_links
from mlops_provider.settings import TRAINING_BACKENDS, get_settings

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops_provider.hooks.mlflow import MlflowHook
    from mlops_provider.operators.training_kubernetes import XGBoostTrainPodOperator
    from mlops_provider.settings import MlopsSettings

RESULT_MARKER = "MLOPS_TRAINING_RESULT="
TRAINER_MODULE = "include.trainer.train"
TRAINER_ROLE_VERBS = {
    "pods": ["create", "get", "list", "watch", "patch", "delete"],
    "pods/log": ["get"],
    "events": ["list", "watch"],
}


def _default_deferrable() -> bool:
    from airflow.sdk.configuration import conf

    return conf.getboolean("operators", "default_deferrable", fallback=False)


def training_result_from_mlflow(mlflow_conn_id: str | None, model_name: str, key: str) -> dict[str, Any] | None:
    """Read back the model version registered by the try with idempotency ``key`` (None when there is none)."""
    from mlops_provider.hooks.mlflow import MlflowHook
    from mlops_provider.training.registry import find_training_result

    return find_training_result(MlflowHook(mlflow_conn_id).get_client(), model_name, key)


def parse_result_marker(lines: Sequence[str]) -> dict[str, Any] | None:
    """Return the result JSON of the last ``MLOPS_TRAINING_RESULT=`` line in a log, if any."""
    for line in reversed(list(lines)):
        _, sep, payload = line.partition(RESULT_MARKER)
        if sep:
            return json.loads(payload)
    return None


class XGBoostTrainOperator(BaseOperator):
    """Train and register the XGBoost model on the configured backend.

    :param model_name: registered model name. (templated)
    :param training_set: the training-set manifest (``FeastTrainingSetOperator``'s XCom) or its URI. (templated)
    :param params_file: trainer parameter file, relative to the project root (and to the image's workdir). (templated)
    :param backend: ``local``, ``kubernetes`` or ``vertex``; default ``[mlops] training_backend``. (templated)
    :param run_name: MLflow run name; default ``<model_name>-<logical date>``. (templated)
    :param mlflow_conn_id: MLflow connection; default ``[mlops] mlflow_conn_id``. (templated)
    :param render_only: write the pod / CustomJob spec to ``<local_root>/render/`` and return it, submit nothing.
    :param image: trainer image for kubernetes/vertex; default ``[mlops] trainer_image``. (templated)
    :param kubernetes_conn_id: default ``[mlops] kubernetes_conn_id``. (templated)
    :param namespace: default ``[mlops] namespace``. (templated)
    :param gpus: GPUs per pod/job (0: CPU). :param cpu: CPU request/limit. :param memory: memory request/limit.
    :param service_account_name: the training pods' service account.
    :param mlflow_credentials_secret: Kubernetes Secret with the MLflow credentials (``envFrom``).
    :param extra_secrets: more Kubernetes Secrets mounted with ``envFrom``.
    :param gpu_node_selector: / :param gpu_tolerations: where GPU pods may run.
    :param startup_timeout_seconds: how long a pod may stay Pending (e.g. waiting for a GPU node).
    :param deferrable: wait in the triggerer; default ``[operators] default_deferrable``.
    :param pod_kwargs: any other KubernetesPodOperator keyword (``affinity``, ``priority_class_name``, ...).
    :param gcp_conn_id: / :param vertex_project: / :param vertex_region: Vertex AI target (default from settings).
    :param vertex_machine_type: / :param vertex_accelerator_type: the CustomJob's worker machine.
    :param vertex_service_account: service account the CustomJob runs as.
    :param vertex_staging_bucket: ``gs://`` base output directory of the job.
    :param poll_interval: seconds between job/pod status checks.
    """

    template_fields: Sequence[str] = (
        "model_name",
        "training_set",
        "params_file",
        "backend",
        "run_name",
        "mlflow_conn_id",
        "image",
        "kubernetes_conn_id",
        "namespace",
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
        params_file: str = "include/trainer/params.yaml",
        backend: str | None = None,
        run_name: str | None = None,
        mlflow_conn_id: str | None = None,
        render_only: bool = False,
        image: str | None = None,
        kubernetes_conn_id: str | None = None,
        namespace: str | None = None,
        gpus: int = 1,
        cpu: str = "4",
        memory: str = "16Gi",
        service_account_name: str = "mlops-trainer",
        mlflow_credentials_secret: str | None = "mlflow-credentials",
        extra_secrets: Sequence[str] = (),
        gpu_node_selector: dict[str, str] | None = None,
        gpu_tolerations: Sequence[dict[str, Any]] | None = None,
        startup_timeout_seconds: int = 900,
        deferrable: bool | None = None,
        pod_kwargs: dict[str, Any] | None = None,
        gcp_conn_id: str | None = None,
        vertex_project: str | None = None,
        vertex_region: str | None = None,
        vertex_machine_type: str = "g2-standard-8",
        vertex_accelerator_type: str = "NVIDIA_L4",
        vertex_service_account: str | None = None,
        vertex_staging_bucket: str | None = None,
        poll_interval: float = 10.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.training_set = training_set
        self.params_file = params_file
        self.backend = backend
        self.run_name = run_name
        self.mlflow_conn_id = mlflow_conn_id
        self.render_only = render_only
        self.image = image
        self.kubernetes_conn_id = kubernetes_conn_id
        self.namespace = namespace
        self.gpus = gpus
        self.cpu = cpu
        self.memory = memory
        self.service_account_name = service_account_name
        self.mlflow_credentials_secret = mlflow_credentials_secret
        self.extra_secrets = list(extra_secrets)
        self.gpu_node_selector = gpu_node_selector
        self.gpu_tolerations = gpu_tolerations
        self.startup_timeout_seconds = startup_timeout_seconds
        self.deferrable = _default_deferrable() if deferrable is None else deferrable
        self.pod_kwargs = dict(pod_kwargs or {})
        self.gcp_conn_id = gcp_conn_id
        self.vertex_project = vertex_project
        self.vertex_region = vertex_region
        self.vertex_machine_type = vertex_machine_type
        self.vertex_accelerator_type = vertex_accelerator_type
        self.vertex_service_account = vertex_service_account
        self.vertex_staging_bucket = vertex_staging_bucket
        self.poll_interval = poll_interval
        self._process: subprocess.Popen | None = None
        self._pod_operator: XGBoostTrainPodOperator | None = None

    # ------------------------------------------------------------------ shared
    @cached_property
    def settings(self) -> MlopsSettings:
        """The bundle's settings (read at execution time, never at parse time)."""
        return get_settings()

    @cached_property
    def hook(self) -> MlflowHook:
        """MLflow hook of ``mlflow_conn_id``."""
        from mlops_provider.hooks.mlflow import MlflowHook

        return MlflowHook(self.mlflow_conn_id)

    def resolved_backend(self) -> str:
        """The backend this task uses."""
        backend = self.backend or self.settings.training_backend
        if backend not in TRAINING_BACKENDS:
            raise TrainingFailedError(f"training backend {backend!r} is not one of {', '.join(TRAINING_BACKENDS)}")
        return backend

    def training_set_uri(self) -> str:
        """The snapshot URI from the manifest (or the URI given directly)."""
        ts = self.training_set
        if isinstance(ts, str) and ts.strip().startswith("{"):
            ts = json.loads(ts)
        if isinstance(ts, dict):
            uri = ts.get("uri")
            if not uri:
                raise TrainingFailedError(f"the training-set manifest has no 'uri' (keys: {sorted(ts)})")
            return str(uri)
        if not ts:
            raise TrainingFailedError("no training set given: pass the FeastTrainingSetOperator's output or a URI")
        return str(ts)

    def params_path(self) -> Path:
        """The params file on this machine (relative paths are under the project root)."""
        path = Path(self.params_file)
        return path if path.is_absolute() else self.settings.project_root / path

    def _params_sha256(self) -> str | None:
        import hashlib

        path = self.params_path()
        return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None

    def _run_name(self, context: Context | None) -> str:
        if self.run_name:
            return self.run_name
        if context and context.get("logical_date"):
            return f"{self.model_name}-{context['logical_date'].strftime('%Y%m%dT%H%M%S')}"
        if context and context.get("run_id"):
            return f"{self.model_name}-{context['run_id']}"
        return f"{self.model_name}-train"

    def _finish(self, context: Context, result: dict[str, Any], backend: str) -> dict[str, Any]:
        result = {**result, "backend": backend}
        persist_mlflow_links(
            context,
            self.hook,
            experiment_id=result.get("experiment_id"),
            run_id=result.get("run_id"),
            model_name=result.get("model_name"),
            version=result.get("model_version"),
        )
        self.log.info(
            "Model %s version %s (run %s, %s on %s): roc_auc=%.4f pr_auc=%.4f%s",
            result["model_name"],
            result["model_version"],
            result["run_id"],
            result.get("device"),
            backend,
            result["metrics"].get("roc_auc", float("nan")),
            result["metrics"].get("pr_auc", float("nan")),
            " (reused the version this try registered earlier)" if result.get("reused") else "",
        )
        return result

    # ------------------------------------------------------------------ execute
    def execute(self, context: Context) -> dict[str, Any]:
        """Train on the configured backend and return the registered version."""
        backend = self.resolved_backend()
        if self.render_only:
            return self.render(context, backend)
        if backend == "local":
            return self._finish(context, self._execute_local(context), backend)
        if backend == "kubernetes":
            return self._finish(context, self.pod_operator().execute(context), backend)
        return self._finish(context, self._execute_vertex(context), backend)

    def trigger_reentry(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume the kubernetes backend after its pod trigger fired."""
        return self._finish(context, self.pod_operator().trigger_reentry(context, event), "kubernetes")

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume the vertex backend after the CustomJob trigger fired."""
        return self._finish(context, self._vertex_complete(context, event), "vertex")

    def on_kill(self) -> None:
        """Stop the local trainer process or delete the training pod."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
        if self._pod_operator is not None:
            self._pod_operator.on_kill()

    def render(self, context: Context | None, backend: str | None = None) -> dict[str, Any]:
        """Write the spec this task would submit to ``<local_root>/render/`` and return it (submits nothing)."""
        import yaml

        backend = backend or self.resolved_backend()
        if backend == "vertex":
            spec, kind = self.custom_job_spec(context), "customjob"
        elif backend == "kubernetes":
            spec, kind = self.pod_operator().render_pod(context), "pod"
        else:
            spec, kind = self._local_command(context), "command"
        name = f"{self.task_id}.{kind}.yaml"
        folder = self.settings.local_root / "render"
        if context:
            folder = folder / context["ti"].dag_id / str(context["run_id"]).replace(":", "_").replace("+", "_")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        self.log.info("Rendered the %s %s spec to %s (nothing was submitted).", backend, kind, path)
        return {"backend": backend, "kind": kind, "path": str(path), "spec": spec}

    # ------------------------------------------------------------------ local
    def trainer_env(self) -> dict[str, str]:
        """Environment of the local trainer process: MLflow target and credentials, scoped to the child only."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AIRFLOW_CONN_"))}
        env["MLFLOW_TRACKING_URI"] = self.hook.tracking_uri
        if self.hook.registry_uri != self.hook.tracking_uri:
            env["MLFLOW_REGISTRY_URI"] = self.hook.registry_uri
        if self.hook.artifact_location:
            env["MLOPS_MLFLOW_ARTIFACT_ROOT"] = self.hook.artifact_location
        env.update(self.hook.credential_env())
        root = str(self.settings.project_root)
        env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
        env.setdefault("MPLBACKEND", "Agg")
        return env

    def _local_command(self, context: Context | None) -> dict[str, Any]:
        """The local trainer's command line, working directory and result file (no secrets: env is not included)."""
        from mlops_provider.operators.training_kubernetes import (
            airflow_ids_from_context,
            idempotency_key_from_context,
            trainer_arguments,
        )

        key = idempotency_key_from_context(context) if context else None
        folder = (key or "adhoc").replace("/", "_").replace(":", "_").replace("+", "_")
        output = self.settings.local_root / "training" / folder / "result.json"
        args = trainer_arguments(
            training_set_uri=self.training_set_uri(),
            params_file=str(self.params_path()),
            model_name=self.model_name,
            output_json=str(output),
            run_name=self._run_name(context),
            idempotency_key=key,
            airflow_ids=airflow_ids_from_context(context),
        )
        return {
            "argv": [sys.executable, "-m", TRAINER_MODULE, *args],
            "cwd": str(self.settings.project_root),
            "output_json": str(output),
        }

    def _execute_local(self, context: Context) -> dict[str, Any]:
        command = self._local_command(context)
        output = Path(command["output_json"])
        output.parent.mkdir(parents=True, exist_ok=True)
        output.unlink(missing_ok=True)
        cmd = command["argv"]
        self.log.info("Running the trainer: %s", " ".join(cmd))
        lines: list[str] = []
        self._process = subprocess.Popen(
            cmd,
            cwd=self.settings.project_root,
            env=self.trainer_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        assert self._process.stdout is not None
        for raw in self._process.stdout:
            line = raw.rstrip("\n")
            lines.append(line)
            if not line.startswith(RESULT_MARKER):
                self.log.info("[trainer] %s", line)
        code = self._process.wait()
        if code != 0:
            errors = [ln.partition("MLOPS_TRAINING_ERROR=")[2] for ln in lines if "MLOPS_TRAINING_ERROR=" in ln]
            detail = errors[-1] if errors else "\n".join(lines[-15:])
            raise TrainingFailedError(f"The local trainer exited with code {code}: {detail}")
        if output.is_file():
            return json.loads(output.read_text())
        result = parse_result_marker(lines)
        if result is None:
            raise TrainingFailedError(f"The local trainer exited 0 but wrote no result to {output}")
        return result

    # ------------------------------------------------------------------ kubernetes
    def pod_operator(self) -> XGBoostTrainPodOperator:
        """The KubernetesPodOperator that runs this task's pod (same arguments on every call)."""
        if self._pod_operator is not None:
            return self._pod_operator
        from mlops_provider.operators.training_kubernetes import XGBoostTrainPodOperator

        hook = self.hook
        if hook.is_local:
            raise TrainingFailedError(
                f"The kubernetes training backend needs an MLflow tracking server the pod can reach: create the "
                f"connection {hook.mlflow_conn_id!r} (type mlflow, host = the server URL); the local SQLite store "
                "only exists on this worker."
            )
        uri = self.training_set_uri()
        if uri.startswith("file://") or "://" not in uri:
            self.log.warning(
                "Training set %s is a local path: the pod can only read it if the same path is mounted there. "
                "Set [mlops] data_root to an s3:// or gs:// bucket for the kubernetes backend.",
                uri,
            )
        settings = self.settings
        self._pod_operator = XGBoostTrainPodOperator(
            task_id=self.task_id,
            model_name=self.model_name,
            training_set_uri=uri,
            params_file=self.params_file,
            mlflow_tracking_uri=hook.tracking_uri,
            mlflow_registry_uri=hook.registry_uri if hook.registry_uri != hook.tracking_uri else None,
            mlflow_credentials_secret=self.mlflow_credentials_secret,
            extra_secrets=self.extra_secrets,
            gpus=self.gpus,
            cpu=self.cpu,
            memory=self.memory,
            gpu_node_selector=self.gpu_node_selector,
            gpu_tolerations=self.gpu_tolerations,
            params_sha256=self._params_sha256(),
            mlflow_conn_id=self.mlflow_conn_id,
            run_name=self.run_name or self.model_name,
            image=self.image or settings.trainer_image,
            namespace=self.namespace or settings.namespace,
            kubernetes_conn_id=self.kubernetes_conn_id or settings.kubernetes_conn_id,
            service_account_name=self.service_account_name,
            startup_timeout_seconds=self.startup_timeout_seconds,
            schedule_timeout_seconds=self.startup_timeout_seconds,
            deferrable=self.deferrable,
            poll_interval=self.poll_interval,
            **self.pod_kwargs,
        )
        return self._pod_operator

    # ------------------------------------------------------------------ vertex
    def custom_job_spec(self, context: Context | None) -> dict[str, Any]:
        """The Vertex AI CustomJob (REST/JSON form) this task submits."""
        from mlops_provider.operators.training_kubernetes import (
            RESULT_PATH,
            airflow_ids_from_context,
            idempotency_key_from_context,
            trainer_arguments,
        )

        settings = self.settings
        key = idempotency_key_from_context(context) if context else None
        args = trainer_arguments(
            training_set_uri=self.training_set_uri(),
            params_file=self.params_file,
            model_name=self.model_name,
            output_json=RESULT_PATH,
            run_name=self.run_name or self.model_name,
            idempotency_key=key,
            airflow_ids=airflow_ids_from_context(context),
            params_sha256=self._params_sha256(),
        )
        env = [{"name": "MLFLOW_TRACKING_URI", "value": self.hook.tracking_uri}]
        if self.hook.registry_uri != self.hook.tracking_uri:
            env.append({"name": "MLFLOW_REGISTRY_URI", "value": self.hook.registry_uri})
        machine: dict[str, Any] = {"machineType": self.vertex_machine_type}
        if self.gpus > 0:
            machine.update({"acceleratorType": self.vertex_accelerator_type, "acceleratorCount": int(self.gpus)})
        job_spec: dict[str, Any] = {
            "workerPoolSpecs": [
                {
                    "machineSpec": machine,
                    "replicaCount": "1",
                    "diskSpec": {"bootDiskType": "pd-ssd", "bootDiskSizeGb": 100},
                    "containerSpec": {"imageUri": self.image or settings.trainer_image, "args": args, "env": env},
                }
            ]
        }
        if self.vertex_service_account:
            job_spec["serviceAccount"] = self.vertex_service_account
        if self.vertex_staging_bucket:
            job_spec["baseOutputDirectory"] = {
                "outputUriPrefix": f"{self.vertex_staging_bucket.rstrip('/')}/{self.model_name}"
            }
        labels = {"app": "mlops-trainer", "model": _label_value(self.model_name)}
        if key:
            labels["mlops-try"] = _key_label(key)
        return {"displayName": f"{self.model_name}-train"[:128], "labels": labels, "jobSpec": job_spec}

    def _vertex_target(self) -> tuple[str, str]:
        project = self.vertex_project or self.settings.vertex_project
        region = self.vertex_region or self.settings.vertex_region
        if not project:
            raise TrainingFailedError(
                "The vertex backend needs a project: set [mlops] vertex_project or vertex_project="
            )
        return project, region

    def _execute_vertex(self, context: Context) -> dict[str, Any]:
        from mlops_provider.triggers.vertex import VertexCustomJobTrigger, job_outcome, vertex_job_client

        if self.hook.is_local:
            raise TrainingFailedError(
                f"The vertex training backend needs an MLflow tracking server the job can reach: create the "
                f"connection {self.hook.mlflow_conn_id!r} (type mlflow)."
            )
        project, region = self._vertex_target()
        spec = self.custom_job_spec(context)
        client = vertex_job_client(self.gcp_conn_id or self.settings.gcp_conn_id, region)
        parent = f"projects/{project}/locations/{region}"
        job_name = self._existing_vertex_job(client, parent, spec["labels"]["mlops-try"])
        if job_name is None:
            created = client.create_custom_job(parent=parent, custom_job=_custom_job_proto(spec))
            job_name = created.name
            self.log.info("Submitted Vertex AI CustomJob %s.", job_name)
        else:
            self.log.info("Reattaching to Vertex AI CustomJob %s of this try.", job_name)
        context["ti"].xcom_push(key="vertex_job_name", value=job_name)
        if self.deferrable:
            self.defer(
                trigger=VertexCustomJobTrigger(
                    job_name=job_name,
                    gcp_conn_id=self.gcp_conn_id or self.settings.gcp_conn_id,
                    region=region,
                    poll_interval=self.poll_interval,
                    timeout=self.execution_timeout.total_seconds() if self.execution_timeout else None,
                ),
                method_name="execute_complete",
            )
        import time

        while True:
            state, message = job_outcome(client.get_custom_job(name=job_name))
            if state != "running":
                return self._vertex_complete(context, {"status": state, "job_name": job_name, "message": message})
            time.sleep(self.poll_interval)

    def _existing_vertex_job(self, client: Any, parent: str, try_label: str) -> str | None:
        from mlops_provider.triggers.vertex import job_outcome

        for job in client.list_custom_jobs(request={"parent": parent, "filter": f"labels.mlops-try={try_label}"}):
            state, _ = job_outcome(job)
            if state in ("running", "success"):
                return job.name
        return None

    def _vertex_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        from mlops_provider.operators.training_kubernetes import idempotency_key_from_context

        job = event.get("job_name")
        if event.get("status") != "success":
            raise TrainingFailedError(f"Vertex AI CustomJob {job} {event.get('status')}: {event.get('message')}")
        key = idempotency_key_from_context(context)
        result = training_result_from_mlflow(self.mlflow_conn_id, self.model_name, key)
        if result is None:
            raise TrainingFailedError(
                f"Vertex AI CustomJob {job} succeeded but MLflow has no version of {self.model_name} with "
                f"idempotency key {key!r}: check the job's logs in Cloud Logging."
            )
        return {**result, "vertex_job_name": job}


def _label_value(value: str) -> str:
    import re

    return re.sub(r"[^a-z0-9_-]", "-", value.lower())[:63]


def _key_label(key: str) -> str:
    import hashlib

    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _custom_job_proto(spec: dict[str, Any]) -> Any:
    """The CustomJob message for the aiplatform v1 client, from the REST/JSON spec."""
    from google.cloud import aiplatform_v1

    return aiplatform_v1.CustomJob.from_json(json.dumps(spec))


def render_training_manifests(settings: MlopsSettings | None = None) -> list[dict[str, Any]]:
    """Return the training pod and its least-privilege RBAC (ServiceAccounts, Role, RoleBinding) for ``make render``.

    * ``ServiceAccount/mlops-trainer``: what training pods run as (no API token mounted, no permissions).
    * ``ServiceAccount/airflow-worker`` + ``Role/mlops-training-launcher`` + ``RoleBinding``: what Airflow's
      workers and triggerer need to launch and follow training pods in the namespace: pods
      create/get/list/watch/patch/delete, pods/log get, events list/watch. No ``pods/exec`` (no XCom
      sidecar) and no ClusterRole.
    """
    from mlops_provider.operators.training_kubernetes import XGBoostTrainPodOperator

    settings = settings or get_settings()
    ns = settings.namespace
    model = settings.model_name
    params = settings.project_root / "include" / "trainer" / "params.yaml"
    import hashlib

    digest = hashlib.sha256(params.read_bytes()).hexdigest() if params.is_file() else None
    pod_op = XGBoostTrainPodOperator(
        task_id="train",
        model_name=model,
        training_set_uri=f"{settings.zone_uri('training_sets', 'transactions')}/<content_hash>/data.parquet",
        mlflow_tracking_uri="https://mlflow.example.com",
        image=settings.trainer_image,
        namespace=ns,
        kubernetes_conn_id=settings.kubernetes_conn_id,
        random_name_suffix=False,
        params_sha256=digest,
    )
    pod = pod_op.render_pod(None)
    pod["metadata"]["namespace"] = ns
    labels = {"app.kubernetes.io/part-of": "mlops", "app.kubernetes.io/component": "training"}
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "mlops-trainer", "namespace": ns, "labels": labels},
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "airflow-worker", "namespace": ns, "labels": labels},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "mlops-training-launcher", "namespace": ns, "labels": labels},
            "rules": [
                {"apiGroups": [""], "resources": [resource], "verbs": verbs}
                for resource, verbs in TRAINER_ROLE_VERBS.items()
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "mlops-training-launcher", "namespace": ns, "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "mlops-training-launcher"},
            "subjects": [{"kind": "ServiceAccount", "name": "airflow-worker", "namespace": ns}],
        },
        pod,
    ]
