"""The trainer in a (GPU) pod: a KubernetesPodOperator that runs ``python -m include.trainer``.

Chosen by :func:`~mlops_provider.operators.training.training_operator_class` for the ``kubernetes``
backend and imported only then: the cncf-kubernetes provider pulls in the Kubernetes client, which DAG
files on other backends must not import at parse time.

What the pod gets: the trainer image, ``nvidia.com/gpu`` limits with a GPU node selector and toleration,
CPU/memory requests and limits, a service account without an API token, a non-root read-only-root
security context, MLflow credentials from a Kubernetes Secret (``envFrom.secretRef``; never plain text in
the spec), and the launch arguments of :mod:`mlops_provider.training.launch`. The result is read back
from MLflow by the pod's idempotency key after the pod finished, so no XCom sidecar (and no
``pods/exec`` permission) is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk.exceptions import AirflowSkipException

from mlops_provider.exceptions import TrainingFailedError
from mlops_provider.links.mlflow import MlflowModelVersionLink, MlflowRunLink
from mlops_provider.operators.training_base import DEFAULT_PARAMS_FILE, TRAINING_TEMPLATE_FIELDS, XGBoostTrainMixin
from mlops_provider.payloads import TrainingResult
from mlops_provider.settings import OPTIONS, get_settings
from mlops_provider.training.launch import RESULT_PATH, argument_value, label_value
from mlops_provider.training.manifests import TRAINER_SERVICE_ACCOUNT, trainer_rbac
from mlops_provider.utils.deferrable import default_deferrable
from mlops_provider.utils.faults import fault_point

if TYPE_CHECKING:
    from airflow.sdk import Context
    from kubernetes.client import models as k8s

    from mlops_provider.settings import MlopsSettings

GPU_RESOURCE = "nvidia.com/gpu"
DEFAULT_GPU_NODE_SELECTOR = {"nvidia.com/gpu.present": "true"}
DEFAULT_GPU_TOLERATIONS = ({"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"},)
TRAINER_UID = 10001


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


def _messages_of(exc: BaseException) -> list[str]:
    """Messages of ``exc`` and what it was raised from or during (the pod cleanup re-raises over the cause)."""
    messages: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        messages.append(str(current))
        current = current.__cause__ or current.__context__
    return messages


def was_oom_killed(pod: Any, container: str = "base") -> bool:
    """True when the container was OOMKilled, whatever exit code the kubelet reported (it can be 0)."""
    for cs in getattr(getattr(pod, "status", None), "container_statuses", None) or []:
        if cs.name == container and cs.state and cs.state.terminated and cs.state.terminated.reason == "OOMKilled":
            return True
    return False


class XGBoostTrainKubernetesOperator(XGBoostTrainMixin, KubernetesPodOperator):
    """Run the XGBoost trainer in a (GPU) pod and return the registered model version.

    :param model_name: registered model name. (templated)
    :param training_set: the training-set manifest (``FeastTrainingSetOperator``'s XCom) or its URI. (templated)
    :param params_file: parameter file path inside the image (relative to its working dir); the worker's copy
        (relative to the project root) gives the digest the trainer checks. (templated)
    :param run_name: MLflow run name; default the model name. (templated)
    :param mlflow_conn_id: MLflow connection the pod logs to and the result is read from. (templated)
    :param render_only: write the pod to ``<local_root>/render/`` and return it, submit nothing.
    :param code_version: code identity in the idempotency key; default the image reference.
    :param mlflow_tracking_uri: tracking server the pod reaches; default the connection's. (templated)
    :param mlflow_registry_uri: a separate registry, if any; default the connection's. (templated)
    :param mlflow_credentials_secret: Kubernetes Secret with ``MLFLOW_TRACKING_USERNAME``/``PASSWORD``
        (or ``TOKEN``) mounted with ``envFrom``; None for a server without auth. (templated)
    :param extra_secrets: more Secret names mounted with ``envFrom`` (e.g. storage credentials).
    :param gpus: ``nvidia.com/gpu`` limit; 0 trains on CPU (no GPU selector/toleration then).
    :param cpu: CPU request and limit.
    :param memory: memory request and limit.
    :param gpu_node_selector: node selector for GPU nodes (default ``nvidia.com/gpu.present=true``).
    :param gpu_tolerations: tolerations for GPU node taints (default ``nvidia.com/gpu`` NoSchedule, Exists).
    :param image: trainer image; default ``[mlops] trainer_image``. (templated)
    :param namespace: default ``[mlops] namespace``. (templated)
    :param kubernetes_conn_id: default ``[mlops] kubernetes_conn_id``. (templated)

    :param schedule_timeout_seconds: how long the pod may wait for a node; default
        ``[mlops] training_schedule_timeout_seconds`` (15 min: an autoscaled GPU pool adds a node in minutes).
    :param startup_timeout_seconds: how long a scheduled pod may take to start (image pull); default
        ``[mlops] training_startup_timeout_seconds`` (5 min).

    Every other keyword is the KubernetesPodOperator's (``service_account_name``, ``deferrable``,
    ``poll_interval``, ``labels``, ``affinity``, ...).
    """

    backend = "kubernetes"
    template_fields: Sequence[str] = (
        *KubernetesPodOperator.template_fields,
        *TRAINING_TEMPLATE_FIELDS,
        "mlflow_tracking_uri",
        "mlflow_registry_uri",
        "mlflow_credentials_secret",
    )
    template_fields_renderers = {**KubernetesPodOperator.template_fields_renderers, "training_set": "json"}
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
        mlflow_tracking_uri: str | None = None,
        mlflow_registry_uri: str | None = None,
        mlflow_credentials_secret: str | None = "mlflow-credentials",
        extra_secrets: Sequence[str] = (),
        gpus: int = 1,
        cpu: str = "4",
        memory: str = "16Gi",
        gpu_node_selector: dict[str, str] | None = None,
        gpu_tolerations: Sequence[dict[str, Any]] | None = None,
        image: str | None = None,
        namespace: str | None = None,
        kubernetes_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        from kubernetes.client import models as k8s  # the cncf provider imported the client already

        self.mlflow_tracking_uri = mlflow_tracking_uri
        self.mlflow_registry_uri = mlflow_registry_uri
        self.mlflow_credentials_secret = mlflow_credentials_secret
        self.extra_secrets = list(extra_secrets)
        self.gpus = int(gpus)
        self.cpu = cpu
        self.memory = memory
        self.final_pod: k8s.V1Pod | None = None

        node_selector = dict(gpu_node_selector if gpu_node_selector is not None else DEFAULT_GPU_NODE_SELECTOR)
        tolerations = [dict(t) for t in (gpu_tolerations if gpu_tolerations is not None else DEFAULT_GPU_TOLERATIONS)]
        if self.gpus == 0:
            node_selector, tolerations = {}, []
        env_from = [
            k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=name, optional=False))
            for name in ([mlflow_credentials_secret] if mlflow_credentials_secret else []) + self.extra_secrets
        ]
        kwargs["labels"] = {
            "app.kubernetes.io/name": "mlops-trainer",
            "app.kubernetes.io/component": "training",
            **(kwargs.get("labels") or {}),
        }
        kwargs.setdefault("service_account_name", TRAINER_SERVICE_ACCOUNT)
        kwargs.setdefault("automount_service_account_token", False)
        kwargs.setdefault("reattach_on_restart", True)
        kwargs.setdefault("on_finish_action", "delete_pod")
        kwargs.setdefault("on_kill_action", "delete_pod")
        kwargs.setdefault("get_logs", True)
        kwargs.setdefault("log_events_on_failure", True)
        # Two waits with two causes: finding a node (minutes on an autoscaled GPU pool) and starting the container
        # (an image pull that should fail fast). None: the [mlops] setting, resolved at run time.
        self.schedule_timeout_override: int | None = kwargs.pop("schedule_timeout_seconds", None)
        self.startup_timeout_override: int | None = kwargs.pop("startup_timeout_seconds", None)
        kwargs.setdefault("image_pull_policy", "IfNotPresent")
        kwargs.setdefault("termination_grace_period", 30)
        kwargs.setdefault("deferrable", default_deferrable())
        # The trainer writes its error to /dev/termination-log; without one, the log's tail becomes the reason.
        kwargs.setdefault("termination_message_policy", "FallbackToLogsOnError")
        # No XCom sidecar: the result comes from MLflow. execute() pushes its return value itself (_push_result).
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
            image=image,
            namespace=namespace,
            kubernetes_conn_id=kubernetes_conn_id,
            container_resources=self._resources(),
            node_selector=node_selector,
            tolerations=[k8s.V1Toleration(**t) for t in tolerations],
            env_from=env_from,
            volumes=[k8s.V1Volume(name="tmp", empty_dir=k8s.V1EmptyDirVolumeSource(size_limit="2Gi"))],
            volume_mounts=[k8s.V1VolumeMount(name="tmp", mount_path="/tmp")],
            startup_timeout_seconds=self.startup_timeout_override
            or int(OPTIONS["training_startup_timeout_seconds"].default),
            schedule_timeout_seconds=self.schedule_timeout_override
            or int(OPTIONS["training_schedule_timeout_seconds"].default),
            **kwargs,
        )
        self._init_training(
            model_name=model_name,
            training_set=training_set,
            params_file=params_file,
            run_name=run_name,
            mlflow_conn_id=mlflow_conn_id,
            render_only=render_only,
            code_version=code_version,
        )

    # ------------------------------------------------------------------ settings and pod spec
    def _resources(self) -> k8s.V1ResourceRequirements:
        """Requests and limits as Kubernetes quantity strings."""
        from kubernetes.client import models as k8s

        limits = {"cpu": self.cpu, "memory": self.memory}
        if self.gpus > 0:
            limits[GPU_RESOURCE] = str(self.gpus)
        return k8s.V1ResourceRequirements(requests={"cpu": self.cpu, "memory": self.memory}, limits=limits)

    def _resolve_defaults(self) -> None:
        """Fill image, namespace and connection from ``[mlops]`` at run time (never at DAG parse time)."""
        settings = get_settings()
        self.image = self.image or settings.trainer_image
        self.namespace = self.namespace or settings.namespace
        self.kubernetes_conn_id = self.kubernetes_conn_id or settings.kubernetes_conn_id
        self.schedule_timeout_seconds = self.schedule_timeout_override or settings.training_schedule_timeout_seconds
        self.startup_timeout_seconds = self.startup_timeout_override or settings.training_startup_timeout_seconds

    def resolved_code_version(self) -> str:
        """``code_version``, else the trainer image reference (what the pod runs)."""
        return self.code_version or str(self.image or get_settings().trainer_image)

    def build_pod_request_obj(self, context: Context | None = None, *, dry_run: bool = False) -> k8s.V1Pod:
        """Fill in the trainer's arguments and environment for this task instance, then build the pod as the parent."""
        from kubernetes.client import models as k8s

        self._resolve_defaults()
        # Derived here, not in __init__: model_name may be a template that is only rendered now.
        if not self.name:
            self.name = self._set_name(f"{self.model_name}-train".replace("_", "-"))
        self.labels = {**self.labels, "mlops/model": label_value(self.model_name)}
        self.arguments = self.trainer_launch(context).arguments(RESULT_PATH, check_params=True)
        # Rebuilt, not rendered: a DAG with render_template_as_native_obj would turn "4" or "1" into integers.
        self.container_resources = self._resources()
        env = {"MLFLOW_TRACKING_URI": self._tracking_uri(), "HOME": "/tmp", "MPLCONFIGDIR": "/tmp/matplotlib"}
        registry = self._registry_uri()
        if registry:
            env["MLFLOW_REGISTRY_URI"] = registry
        self.env_vars = [k8s.V1EnvVar(name=k, value=v) for k, v in env.items()]
        return super().build_pod_request_obj(context, dry_run=dry_run)

    def _tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or self.mlflow_hook.tracking_uri

    def _registry_uri(self) -> str | None:
        if self.mlflow_registry_uri or self.mlflow_tracking_uri:
            return self.mlflow_registry_uri
        hook = self.mlflow_hook
        return hook.registry_uri if hook.registry_uri != hook.tracking_uri else None

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

    def execute(self, context: Context) -> TrainingResult | dict[str, Any]:
        """Run the pod (or defer on it), then return the version the trainer registered."""
        self._resolve_defaults()
        if self.render_only:
            return self._push_result(context, self.write_render(context, "pod", self.render_pod(context)))
        if self.mlflow_tracking_uri is None:
            self.require_remote_mlflow()
        self.require_reachable_training_set(f"The training pod of {self.model_name}")
        try:
            super().execute(context)  # TaskDeferred is a BaseException: deferral passes through
        except (TrainingFailedError, AirflowSkipException):
            raise
        except Exception as exc:
            raise self._failure(exc) from exc
        return self._complete(context)

    def trigger_reentry(self, context: Context, event: dict[str, Any]) -> TrainingResult:
        """Resume after the trigger, clean the pod up, then return the registered version."""
        self._resolve_defaults()
        try:
            super().trigger_reentry(context, event)
        except (TrainingFailedError, AirflowSkipException):
            raise
        except Exception as exc:
            raise self._failure(exc, event=event) from exc
        return self._complete(context)

    def get_or_create_pod(self, pod_request_obj: k8s.V1Pod, context: Context) -> k8s.V1Pod:
        """KubernetesPodOperator's reattach-or-create, plus: a retry adopts a pod an earlier try left that succeeded.

        The parent deletes a finished pod and starts another; a trainer pod that succeeded has registered its
        version, so training again would only burn a GPU for the same answer (read back by the pod's key).
        """
        pod = self._succeeded_pod_of_an_earlier_try(pod_request_obj, context)
        if pod is None:
            pod = super().get_or_create_pod(pod_request_obj, context)
        fault_point("training.after_pod_created")
        return pod

    def _succeeded_pod_of_an_earlier_try(self, pod_request_obj: k8s.V1Pod, context: Context) -> k8s.V1Pod | None:
        if not self.reattach_on_restart:
            return None
        pod = self.find_pod(pod_request_obj.metadata.namespace, context=context)
        if pod is None or not pod.status or pod.status.phase != "Succeeded":
            return None
        self.log.info("Adopting pod %s: an earlier try's trainer finished there, no second pod", pod.metadata.name)
        return pod

    def on_kill(self) -> None:
        """Delete the training pod."""
        self._resolve_defaults()
        super().on_kill()

    def _push_result(self, context: Context, result: Any) -> Any:
        # do_xcom_push is False (it would add KPO's sidecar), so the runner does not push the return value.
        context["ti"].xcom_push(key="return_value", value=result)
        return result

    def _pod(self) -> Any:
        return self.final_pod or getattr(self, "remote_pod", None) or self.pod

    def _failure(self, exc: BaseException, event: dict[str, Any] | None = None) -> TrainingFailedError:
        pod = self._pod()
        reason = describe_pod_failure(pod)
        name = pod.metadata.name if pod is not None and pod.metadata else self.name
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        detail = reason or (event or {}).get("message") or first_line
        where = f"Training pod {self.namespace}/{name} for model {self.model_name}"
        said = " ".join([*_messages_of(exc), str((event or {}).get("message") or "")])
        # The KubernetesPodOperator's own wording for its two launch timeouts (sync and deferrable alike).
        if "too long to be scheduled" in said:
            return TrainingFailedError(
                f"{where} found no node within {self.schedule_timeout_seconds} s: {detail}. An autoscaled GPU pool "
                "takes minutes to add a node: raise schedule_timeout_seconds ([mlops] "
                "training_schedule_timeout_seconds); otherwise check the GPU quota, node selector "
                f"{self.node_selector} and tolerations."
            )
        if "too long to start" in said:
            return TrainingFailedError(
                f"{where} was scheduled but its container did not start within {self.startup_timeout_seconds} s: "
                f"{detail}. Usually a slow or failing pull of {self.image}: check the image reference and pull "
                "secret, or raise startup_timeout_seconds ([mlops] training_startup_timeout_seconds) for a very "
                "large image."
            )
        return TrainingFailedError(f"{where} failed: {detail}. ({type(exc).__name__}: {first_line})")

    def _complete(self, context: Context) -> TrainingResult:
        pod = self._pod()
        name = pod.metadata.name if pod is not None and pod.metadata else self.name
        if was_oom_killed(pod, self.base_container_name):
            raise TrainingFailedError(
                f"Training pod {self.namespace}/{name} was OOMKilled (the kubelet reported it as "
                f"{describe_pod_failure(pod)}); raise memory (now {self.memory}) or lower the data size."
            )
        args = pod.spec.containers[0].args if pod is not None and pod.spec and pod.spec.containers else self.arguments
        # The pod's own key: a reattached pod may come from an earlier start of this task.
        key = argument_value(args, "--idempotency-key") or self.trainer_launch(context).idempotency_key
        if not key:
            raise TrainingFailedError(f"Training pod {self.namespace}/{name} carried no idempotency key")
        result = self.registered_result(key, f"Training pod {self.namespace}/{name}")
        final = self.finish_training(context, result, pod_name=name)
        return self._push_result(context, final)


def render_training_manifests(
    settings: MlopsSettings | None = None, *, model_name: str | None = None, dataset: str = "<dataset>"
) -> list[dict[str, Any]]:
    """Return the training RBAC and the trainer pod for the current settings (``make render``; no cluster needed).

    The pod is the one :class:`XGBoostTrainKubernetesOperator` submits, with placeholders for what only a
    DAG run knows (the dataset and the snapshot's content hash).
    """
    settings = settings or get_settings()
    namespace = settings.namespace
    operator = XGBoostTrainKubernetesOperator(
        task_id="train",
        model_name=model_name or settings.model_name or "model",
        # A placeholder path: only a DAG run knows the dataset's snapshot (and "<dataset>" is no valid name).
        training_set=f"{settings.data_root.rstrip('/')}/training_sets/{dataset}/<content_hash>/data.parquet",
        mlflow_tracking_uri="https://mlflow.example.com",
        image=settings.trainer_image,
        namespace=namespace,
        kubernetes_conn_id=settings.kubernetes_conn_id,
        service_account_name=TRAINER_SERVICE_ACCOUNT,
        random_name_suffix=False,
    )
    pod = operator.render_pod(None)
    pod["metadata"]["namespace"] = namespace
    return [*trainer_rbac(namespace), pod]
