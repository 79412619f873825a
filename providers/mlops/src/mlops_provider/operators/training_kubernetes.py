"""The trainer as a GPU pod: a KubernetesPodOperator that runs ``python -m include.trainer.train``.

Imported lazily by :class:`~mlops_provider.operators.training.XGBoostTrainOperator` (backend
``kubernetes``): the cncf-kubernetes provider pulls in the Kubernetes client, which DAG files must not
import at parse time. Use it directly for a pod-only task.

What the pod gets: the trainer image, ``nvidia.com/gpu`` limits with a GPU node selector and toleration,
CPU/memory requests and limits, a service account without an API token, a non-root read-only-root
security context, MLflow credentials from a Kubernetes Secret (``envFrom.secretRef``; never plain text in
the spec), and the Airflow try's ids as CLI arguments. The result is read back from MLflow by the pod's
idempotency key after the pod finished, so no XCom sidecar (and no ``pods/exec`` permission) is needed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk.exceptions import AirflowSkipException

from mlops_provider.exceptions import TrainingFailedError

if TYPE_CHECKING:
    from airflow.sdk import Context
    from kubernetes.client import models as k8s

TRAINER_MODULE = "include.trainer.train"
RESULT_PATH = "/tmp/mlops/result.json"
GPU_RESOURCE = "nvidia.com/gpu"
DEFAULT_GPU_NODE_SELECTOR = {"nvidia.com/gpu.present": "true"}
DEFAULT_GPU_TOLERATIONS = ({"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"},)
TRAINER_UID = 10001


def idempotency_key_from_context(context: Context) -> str:
    """``dag_id/run_id/task_id/map_index/try_number`` of the running try."""
    ti = context["ti"]
    map_index = ti.map_index if ti.map_index is not None else -1
    return f"{ti.dag_id}/{context['run_id']}/{ti.task_id}/{map_index}/{ti.try_number}"


def trainer_arguments(
    *,
    training_set_uri: str,
    params_file: str,
    model_name: str,
    output_json: str,
    run_name: str | None = None,
    idempotency_key: str | None = None,
    airflow_ids: dict[str, Any] | None = None,
    params_sha256: str | None = None,
    experiment_name: str | None = None,
) -> list[str]:
    """The trainer's command-line arguments (identical for the local, Kubernetes and Vertex backends)."""
    args = [
        "--training-set-uri", training_set_uri,
        "--params-file", params_file,
        "--model-name", model_name,
        "--output-json", output_json,
    ]  # fmt: skip
    if run_name:
        args += ["--run-name", run_name]
    if experiment_name:
        args += ["--experiment-name", experiment_name]
    if idempotency_key:
        args += ["--idempotency-key", idempotency_key]
    if params_sha256:
        args += ["--expect-params-sha256", params_sha256]
    ids = airflow_ids or {}
    for flag, key in (("--dag-id", "dag_id"), ("--dag-run-id", "run_id"), ("--task-id", "task_id"),
                      ("--try-number", "try_number"), ("--map-index", "map_index")):  # fmt: skip
        if ids.get(key) not in (None, ""):
            args += [flag, str(ids[key])]
    return args


def airflow_ids_from_context(context: Context | None) -> dict[str, Any]:
    """The ids the trainer records as lineage tags."""
    if not context:
        return {}
    ti = context["ti"]
    return {
        "dag_id": ti.dag_id,
        "run_id": context["run_id"],
        "task_id": ti.task_id,
        "try_number": ti.try_number,
        "map_index": ti.map_index if ti.map_index is not None else -1,
    }


def argument_value(arguments: Sequence[str] | None, flag: str) -> str | None:
    """Return the value that follows ``flag`` in a pod's argument list."""
    args = list(arguments or [])
    for i, arg in enumerate(args[:-1]):
        if arg == flag:
            return args[i + 1]
    return None


def describe_pod_failure(pod: Any) -> str | None:
    """Summarise why a pod did not succeed: scheduling condition, waiting reason, or termination reason."""
    if pod is None or getattr(pod, "status", None) is None:
        return None
    status = pod.status
    parts: list[str] = []
    for cond in status.conditions or []:
        if cond.type == "PodScheduled" and cond.status == "False":
            parts.append(f"{cond.reason or 'Unschedulable'}: {cond.message or ''}".strip())
    for cs in status.container_statuses or []:
        state = cs.state
        if state is None:
            continue
        if state.waiting and state.waiting.reason not in (None, "ContainerCreating", "PodInitializing"):
            parts.append(f"container {cs.name} waiting: {state.waiting.reason}: {state.waiting.message or ''}".strip())
        if state.terminated and (state.terminated.exit_code != 0 or state.terminated.reason == "OOMKilled"):
            msg = f"container {cs.name} terminated: {state.terminated.reason} (exit code {state.terminated.exit_code})"
            if state.terminated.message:
                msg += f": {state.terminated.message}"
            parts.append(msg)
    if status.reason:
        parts.append(f"pod {status.reason}: {status.message or ''}".strip())
    if not parts and status.phase:
        parts.append(f"pod phase {status.phase}")
    return "; ".join(parts) or None


def was_oom_killed(pod: Any, container: str = "base") -> bool:
    """True when the container was OOMKilled, whatever exit code the kubelet reported (it can be 0)."""
    for cs in getattr(getattr(pod, "status", None), "container_statuses", None) or []:
        if cs.name == container and cs.state and cs.state.terminated and cs.state.terminated.reason == "OOMKilled":
            return True
    return False


class XGBoostTrainPodOperator(KubernetesPodOperator):
    """Run the XGBoost trainer in a (GPU) pod and return the registered model version.

    :param model_name: registered model name. (templated)
    :param training_set_uri: the training-set snapshot (folder or ``data.parquet``). (templated)
    :param params_file: parameter file path inside the image (relative to its working dir). (templated)
    :param mlflow_tracking_uri: tracking server the pod reaches (http/https). (templated)
    :param mlflow_registry_uri: a separate registry, if any. (templated)
    :param mlflow_credentials_secret: Kubernetes Secret with ``MLFLOW_TRACKING_USERNAME``/``PASSWORD``
        (or ``TOKEN``) mounted with ``envFrom``; None for a server without auth. (templated)
    :param extra_secrets: more Secret names mounted with ``envFrom`` (e.g. storage credentials).
    :param gpus: ``nvidia.com/gpu`` limit; 0 trains on CPU (no GPU selector/toleration then).
    :param cpu: CPU request and limit. :param memory: memory request and limit.
    :param gpu_node_selector: node selector for GPU nodes (default ``nvidia.com/gpu.present=true``).
    :param gpu_tolerations: tolerations for GPU node taints (default ``nvidia.com/gpu`` NoSchedule, Exists).
    :param params_sha256: digest of the DAG bundle's params file; the trainer refuses a different file.
    :param mlflow_conn_id: connection the operator reads the result from after the pod finished.
    :param run_name: MLflow run name. (templated)
    Every other keyword is the KubernetesPodOperator's (``image``, ``namespace``, ``kubernetes_conn_id``,
    ``service_account_name``, ``deferrable``, ``startup_timeout_seconds``, ...).
    """

    template_fields: Sequence[str] = (
        *KubernetesPodOperator.template_fields,
        "model_name",
        "training_set_uri",
        "params_file",
        "mlflow_tracking_uri",
        "mlflow_registry_uri",
        "mlflow_credentials_secret",
        "mlflow_conn_id",
        "run_name",
    )

    def __init__(
        self,
        *,
        model_name: str,
        training_set_uri: str,
        params_file: str = "include/trainer/params.yaml",
        mlflow_tracking_uri: str,
        mlflow_registry_uri: str | None = None,
        mlflow_credentials_secret: str | None = "mlflow-credentials",
        extra_secrets: Sequence[str] = (),
        gpus: int = 1,
        cpu: str = "4",
        memory: str = "16Gi",
        gpu_node_selector: dict[str, str] | None = None,
        gpu_tolerations: Sequence[dict[str, Any]] | None = None,
        params_sha256: str | None = None,
        mlflow_conn_id: str | None = None,
        run_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.model_name = model_name
        self.training_set_uri = training_set_uri
        self.params_file = params_file
        self.mlflow_tracking_uri = mlflow_tracking_uri
        self.mlflow_registry_uri = mlflow_registry_uri
        self.mlflow_credentials_secret = mlflow_credentials_secret
        self.extra_secrets = list(extra_secrets)
        self.gpus = int(gpus)
        self.cpu = cpu
        self.memory = memory
        self.params_sha256 = params_sha256
        self.mlflow_conn_id = mlflow_conn_id
        self.run_name = run_name
        self.final_pod: k8s.V1Pod | None = None
        from kubernetes.client import models as k8s  # the provider imported the client already

        limits = {"cpu": cpu, "memory": memory}
        if self.gpus > 0:
            limits[GPU_RESOURCE] = str(self.gpus)
        node_selector = dict(gpu_node_selector if gpu_node_selector is not None else DEFAULT_GPU_NODE_SELECTOR)
        tolerations = [dict(t) for t in (gpu_tolerations if gpu_tolerations is not None else DEFAULT_GPU_TOLERATIONS)]
        if self.gpus == 0:
            node_selector, tolerations = {}, []
        env_from = [
            k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=name, optional=False))
            for name in ([mlflow_credentials_secret] if mlflow_credentials_secret else []) + self.extra_secrets
        ]
        kwargs.setdefault("name", f"{model_name}-train".replace("_", "-"))
        kwargs.setdefault("labels", {})
        kwargs["labels"] = {
            "app.kubernetes.io/name": "mlops-trainer",
            "app.kubernetes.io/component": "training",
            "mlops/model": model_name.replace("_", "-"),
            **kwargs["labels"],
        }
        kwargs.setdefault("service_account_name", "mlops-trainer")
        kwargs.setdefault("automount_service_account_token", False)
        kwargs.setdefault("reattach_on_restart", True)
        kwargs.setdefault("on_finish_action", "delete_pod")
        kwargs.setdefault("on_kill_action", "delete_pod")
        kwargs.setdefault("get_logs", True)
        kwargs.setdefault("log_events_on_failure", True)
        kwargs.setdefault("startup_timeout_seconds", 900)
        kwargs.setdefault("image_pull_policy", "IfNotPresent")
        kwargs.setdefault("termination_grace_period", 30)
        # The trainer writes its error to /dev/termination-log; without one, the log's tail becomes the reason.
        kwargs.setdefault("termination_message_policy", "FallbackToLogsOnError")
        kwargs["do_xcom_push"] = False
        kwargs.setdefault(
            "security_context",
            {
                "runAsNonRoot": True,
                "runAsUser": TRAINER_UID,
                "runAsGroup": TRAINER_UID,
                "fsGroup": TRAINER_UID,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
        )
        kwargs.setdefault(
            "container_security_context",
            {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "runAsNonRoot": True,
                "capabilities": {"drop": ["ALL"]},
            },
        )
        super().__init__(
            container_resources=k8s.V1ResourceRequirements(requests={"cpu": cpu, "memory": memory}, limits=limits),
            node_selector=node_selector,
            tolerations=[k8s.V1Toleration(**t) for t in tolerations],
            env_from=env_from,
            volumes=[k8s.V1Volume(name="tmp", empty_dir=k8s.V1EmptyDirVolumeSource(size_limit="2Gi"))],
            volume_mounts=[k8s.V1VolumeMount(name="tmp", mount_path="/tmp")],
            **kwargs,
        )

    # ------------------------------------------------------------------ pod spec
    def build_pod_request_obj(self, context: Context | None = None, *, dry_run: bool = False) -> k8s.V1Pod:
        """Fill in the trainer's arguments and environment for this try, then build the pod like the parent."""
        from kubernetes.client import models as k8s

        key = idempotency_key_from_context(context) if context else None
        self.arguments = trainer_arguments(
            training_set_uri=self.training_set_uri,
            params_file=self.params_file,
            model_name=self.model_name,
            output_json=RESULT_PATH,
            run_name=self.run_name,
            idempotency_key=key,
            airflow_ids=airflow_ids_from_context(context),
            params_sha256=self.params_sha256,
        )
        env = {"MLFLOW_TRACKING_URI": self.mlflow_tracking_uri, "HOME": "/tmp", "MPLCONFIGDIR": "/tmp/matplotlib"}
        if self.mlflow_registry_uri:
            env["MLFLOW_REGISTRY_URI"] = self.mlflow_registry_uri
        self.env_vars = [k8s.V1EnvVar(name=k, value=v) for k, v in env.items()]
        return super().build_pod_request_obj(context, dry_run=dry_run)

    def render_pod(self, context: Context | None = None) -> dict[str, Any]:
        """Return the exact pod object this operator submits, as a Kubernetes API dict."""
        from kubernetes.client import ApiClient

        pod = self.build_pod_request_obj(context, dry_run=True)
        return ApiClient().sanitize_for_serialization(pod)

    # ------------------------------------------------------------------ execution
    def cleanup(
        self, pod: k8s.V1Pod, remote_pod: k8s.V1Pod, xcom_result: dict | None = None, context: Context | None = None
    ) -> None:
        """Record the pod's final state (for the failure message and the OOM check) before it is deleted."""
        latest = remote_pod
        try:
            if pod is not None:
                latest = self.pod_manager.read_pod(pod)
        except Exception:  # deleted already, API flake: keep what we have
            self.log.debug("Could not re-read pod before cleanup", exc_info=True)
        self.final_pod = latest
        super().cleanup(pod=pod, remote_pod=remote_pod, xcom_result=xcom_result, context=context)

    def execute(self, context: Context) -> dict[str, Any]:
        """Run the pod (or defer on it), then return the version the trainer registered."""
        try:
            super().execute(context)  # TaskDeferred is a BaseException: deferral passes through
        except (TrainingFailedError, AirflowSkipException):
            raise
        except Exception as exc:
            raise self._failure(exc) from exc
        return self._finish(context)

    def trigger_reentry(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the trigger, clean the pod up, then return the registered version."""
        try:
            super().trigger_reentry(context, event)
        except (TrainingFailedError, AirflowSkipException):
            raise
        except Exception as exc:
            raise self._failure(exc, event=event) from exc
        return self._finish(context)

    def _failure(self, exc: BaseException, event: dict[str, Any] | None = None) -> TrainingFailedError:
        pod = self.final_pod or getattr(self, "remote_pod", None) or self.pod
        reason = describe_pod_failure(pod)
        name = pod.metadata.name if pod is not None and pod.metadata else self.name
        detail = reason or (event or {}).get("message") or str(exc).splitlines()[0]
        return TrainingFailedError(
            f"Training pod {self.namespace}/{name} for model {self.model_name} failed: {detail}. "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        )

    def _finish(self, context: Context) -> dict[str, Any]:
        pod = self.final_pod or getattr(self, "remote_pod", None) or self.pod
        name = pod.metadata.name if pod is not None and pod.metadata else self.name
        if was_oom_killed(pod, self.base_container_name):
            raise TrainingFailedError(
                f"Training pod {self.namespace}/{name} was OOMKilled (the kubelet reported it as "
                f"{describe_pod_failure(pod)}); raise memory (now {self.memory}) or lower the data size."
            )
        args = pod.spec.containers[0].args if pod is not None and pod.spec and pod.spec.containers else self.arguments
        key = argument_value(args, "--idempotency-key") or idempotency_key_from_context(context)
        from mlops_provider.operators.training import training_result_from_mlflow

        result = training_result_from_mlflow(self.mlflow_conn_id, self.model_name, key)
        if result is None:
            raise TrainingFailedError(
                f"Training pod {self.namespace}/{name} succeeded but MLflow has no model version of {self.model_name} "
                f"with idempotency key {key!r}: check the pod's log and that it reached {self.mlflow_tracking_uri}."
            )
        result["backend"] = "kubernetes"
        result["pod_name"] = name
        return result


def params_digest(text: bytes) -> str:
    """SHA-256 of a params file's bytes (the trainer checks it)."""
    return hashlib.sha256(text).hexdigest()


def pod_to_dict(pod: k8s.V1Pod) -> dict[str, Any]:
    """A pod model as the JSON the API server receives."""
    from kubernetes.client import ApiClient

    return json.loads(json.dumps(ApiClient().sanitize_for_serialization(pod)))
