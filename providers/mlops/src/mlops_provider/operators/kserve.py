"""Roll a registered model version out to its endpoint (KServe canary or local blue/green) and smoke-test it.

Rollout semantics follow Flagger and Argo Rollouts: after the new version is Ready, an analysis runs a check
every ``analysis_interval`` seconds (smoke requests through the endpoint: error rate, p99 latency, prediction
sanity); ``analysis_iterations`` passing checks complete a step, ``failure_threshold`` failed checks roll back,
optional stepped weights raise the canary's share up to ``max_weight``, and ``progress_deadline`` bounds the
whole rollout. Only after promotion does the MLflow alias ``champion`` move to the new version.

KServe modes: ``canaryTrafficPercent`` splits traffic between Knative revisions, so it only works in Serverless
mode; in RawDeployment (``Standard``) mode KServe ignores it. The operator reads the mode (status, else the
``serving.kserve.io/deploymentMode`` annotation) and the traffic KServe reports in
``status.components.predictor.traffic``: a canary is only reported when that traffic shows the split. In raw
mode ``raw_deployment_strategy="rolling"`` rolls the Deployment (old pods serve until new ones are Ready), runs the
same analysis at full traffic and rolls back on failure; ``"refuse"`` stops before changing anything.
"""

from __future__ import annotations

import json
import math
import re
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowSkipException

from mlops_provider.exceptions import MlopsError, RolloutFailedError, RolloutRolledBackError
from mlops_provider.hooks.kserve import (
    DEPLOYMENT_MODE_ANNOTATION,
    KIND,
    RAW_MODES,
    deployment_mode,
    endpoint_url_of,
    is_raw_mode,
    predictor_status,
    predictor_traffic,
    storage_uri_of,
)
from mlops_provider.links.kserve import KServeEndpointLink

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops_provider.hooks.kserve import KServeHook
    from mlops_provider.hooks.local_serving import LocalServingHook
    from mlops_provider.settings import MlopsSettings

CHAMPION = "champion"
# URI schemes KServe's storage initializer downloads into /mnt/models (file:// and local paths are kept as
# storageUri too: they only work where the path is mounted, e.g. a kind cluster or the tests).
STORAGE_INITIALIZER_SCHEMES = (
    "s3://", "gs://", "pvc://", "http://", "https://", "hdfs://", "webhdfs://", "hf://", "oci://", "file://", "/",
)  # fmt: skip
FEAST_CONFIG_MOUNT = "/etc/feast"
VERSION_ANNOTATION = "mlops.example.com/model-version"
MANAGED_BY = "airflow-provider-mlops"


def _default_deferrable() -> bool:
    from airflow.sdk.configuration import conf

    return conf.getboolean("operators", "default_deferrable", fallback=False)


def k8s_name(model_name: str) -> str:
    """Turn a model name into a DNS-1035 label usable as an InferenceService name."""
    name = re.sub(r"[^a-z0-9-]+", "-", model_name.lower()).strip("-")
    if not name or not name[0].isalpha():
        name = f"m-{name}"
    return name[:45].rstrip("-")


# ---------------------------------------------------------------------------------------------------------------------
# Manifests
# ---------------------------------------------------------------------------------------------------------------------
def render_serving_runtime(
    settings: MlopsSettings | None = None, *, name: str = "mlops-xgboost", image: str | None = None
) -> dict:
    """Render the ServingRuntime that runs ``mlops_serving`` (the bundle's image) for ``xgboost`` models."""
    if settings is None:
        from mlops_provider.settings import get_settings

        settings = get_settings()
    return {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ServingRuntime",
        "metadata": {
            "name": name,
            "namespace": settings.namespace,
            "labels": {"app.kubernetes.io/managed-by": MANAGED_BY},
        },
        "spec": {
            "annotations": {"prometheus.kserve.io/port": "8080", "prometheus.kserve.io/path": "/metrics"},
            "supportedModelFormats": [{"name": "xgboost", "version": "3", "autoSelect": True, "priority": 2}],
            "protocolVersions": ["v1", "v2", "grpc-v2"],
            "containers": [
                {
                    "name": "kserve-container",
                    "image": image or settings.serving_image,
                    "args": [
                        "--component=predictor",
                        "--model_name={{.Name}}",
                        "--storage_uri=/mnt/models",
                        "--http_port=8080",
                    ],
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                    "resources": {
                        "requests": {"cpu": "500m", "memory": "512Mi"},
                        "limits": {"cpu": "1", "memory": "1Gi"},
                    },
                    "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False},
                }
            ],
        },
    }


def render_inference_service(
    model_name: str,
    storage_uri: str,
    settings: MlopsSettings | None = None,
    *,
    name: str | None = None,
    namespace: str | None = None,
    model_version: str | None = None,
    image: str | None = None,
    runtime: str = "mlops-xgboost",
    deployment_mode: str = "Serverless",
    canary_traffic_percent: int | None = None,
    min_replicas: int = 1,
    max_replicas: int = 3,
    scale_metric: str | None = None,
    scale_target: int | None = None,
    resources: dict | None = None,
    transformer: bool = True,
    transformer_resources: dict | None = None,
    feature_service: str = "fraud_model_v1",
    feast_repo_path: str = "/app/include/feature_repo",
    feast_secret: str | None = "feast-online-store",
    feast_config_map: str = "feast-config",
    mlflow_secret: str | None = "mlflow-credentials",
    prediction_log_uri: str | None = None,
    enable_tag_routing: bool = True,
    service_account: str | None = None,
) -> dict:
    """Render a KServe ``InferenceService`` for one model version.

    :param model_name: registered model name (also the name on the V2 path).
    :param storage_uri: model location; ``s3://``/``gs://``/``pvc://``/``https://`` go through KServe's storage
        initializer, other URIs (``models:/``, ``mlflow-artifacts:/``) are passed to the server, which resolves them
        through MLflow.
    :param settings: bundle settings (image, namespace, data root); default :func:`get_settings`.
    :param deployment_mode: ``Serverless`` (Knative; canaries split traffic) or ``RawDeployment``.
    :param canary_traffic_percent: the new revision's traffic share (Serverless only); ``None`` for 100 %.
    :param min_replicas: minimum replicas (0 allows scale to zero in Serverless).
    :param max_replicas: maximum replicas.
    :param scale_metric: ``concurrency``/``rps`` (Serverless) or ``cpu``/``memory`` (raw); default per mode.
    :param scale_target: target value of the scale metric.
    :param transformer: add the Feast transformer in front of the predictor.
    :param feast_secret: Secret with the online store's credentials (referenced, never inlined).
    :param feast_config_map: ConfigMap holding the resolved ``feature_store.yaml`` (see :func:`render_feast_config_map`).
    :param mlflow_secret: Secret with ``MLFLOW_TRACKING_URI``/credentials for ``models:/`` URIs.
    :return: the manifest as a dict (validates against the InferenceService CRD schema).
    """
    if settings is None:
        from mlops_provider.settings import get_settings

        settings = get_settings()
    raw = deployment_mode in RAW_MODES
    if raw and canary_traffic_percent not in (None, 100):
        raise ValueError(
            f"canaryTrafficPercent={canary_traffic_percent} has no effect in {deployment_mode} mode (no Knative "
            "revisions); render without it and roll out with raw_deployment_strategy='rolling'."
        )
    scale_metric = scale_metric or ("cpu" if raw else "concurrency")
    if raw and scale_metric in ("concurrency", "rps"):
        raise ValueError(f"scale_metric={scale_metric!r} needs Knative; in {deployment_mode} mode use cpu or memory.")
    scale_target = scale_target if scale_target is not None else (70 if scale_metric in ("cpu", "memory") else 10)
    name = name or k8s_name(model_name)
    version = str(model_version) if model_version is not None else None
    labels = {"app.kubernetes.io/managed-by": MANAGED_BY, "mlops.example.com/model-name": k8s_name(model_name)}
    annotations = {DEPLOYMENT_MODE_ANNOTATION: deployment_mode}
    if version:
        labels["mlops.example.com/model-version"] = re.sub(r"[^A-Za-z0-9_.-]", "-", version)[:63]
        annotations[VERSION_ANNOTATION] = version
    if enable_tag_routing and not raw:
        # Per-revision URLs (latest-/prev-) so the analysis can target the canary itself.
        annotations["serving.kserve.io/enable-tag-routing"] = "true"
    if not raw:
        annotations["serving.kserve.io/enable-prometheus-scraping"] = "true"

    # URIs KServe's storage initializer cannot fetch (MLflow's) are handed to the server, which resolves them.
    via_server = not storage_uri.startswith(STORAGE_INITIALIZER_SCHEMES)
    model: dict[str, Any] = {
        "modelFormat": {"name": "xgboost", "version": "3"},
        "runtime": runtime,
        "protocolVersion": "v2",
        "resources": resources
        or {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
    }
    args = []
    if version:
        args.append(f"--model_version={version}")
    log_uri = prediction_log_uri or f"{settings.data_root.rstrip('/')}/predictions/{model_name}"
    if not log_uri.startswith("file:"):
        args.append(f"--prediction_log_uri={log_uri}")
    if via_server:
        args.append(f"--storage_uri={storage_uri}")
        if mlflow_secret:
            model["envFrom"] = [{"secretRef": {"name": mlflow_secret, "optional": True}}]
    else:
        model["storageUri"] = storage_uri
    if args:
        model["args"] = args
    predictor: dict[str, Any] = {
        "model": model,
        "minReplicas": min_replicas,
        "maxReplicas": max_replicas,
        "scaleMetric": scale_metric,
        "scaleTarget": scale_target,
    }
    if raw:
        predictor["scaleMetricType"] = "Utilization"
        # Old pods keep serving until new ones are Ready: the raw-mode rollout strategy.
        predictor["deploymentStrategy"] = {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
        }
    if canary_traffic_percent is not None and canary_traffic_percent != 100:
        predictor["canaryTrafficPercent"] = int(canary_traffic_percent)
    if service_account:
        predictor["serviceAccountName"] = service_account
    spec: dict[str, Any] = {"predictor": predictor}
    if transformer:
        container: dict[str, Any] = {
            "name": "kserve-container",
            "image": image or settings.serving_image,
            "args": [
                "--component=transformer",
                f"--model_name={model_name}",
                f"--feast_repo_path={feast_repo_path}",
                f"--feature_service={feature_service}",
                "--predictor_protocol=v2",
                f"--storage_uri={storage_uri if via_server else '/mnt/models'}",
                f"--feast_config={FEAST_CONFIG_MOUNT}/feature_store.yaml",
            ],
            # The resolved feature_store.yaml (secrets as ${VAR}, filled from feast_secret by Feast at start-up).
            "volumeMounts": [{"name": "feast-config", "mountPath": FEAST_CONFIG_MOUNT, "readOnly": True}],
            "resources": transformer_resources
            or {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
            "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False},
        }
        env_from = [
            {"secretRef": {"name": s, "optional": True}}
            for s in (feast_secret, mlflow_secret if via_server else None)
            if s
        ]
        if env_from:
            container["envFrom"] = env_from
        transformer_spec: dict[str, Any] = {
            "containers": [container],
            "volumes": [{"name": "feast-config", "configMap": {"name": feast_config_map}}],
            "minReplicas": min_replicas,
            "maxReplicas": max_replicas,
            "scaleMetric": scale_metric,
            "scaleTarget": scale_target,
        }
        if raw:
            transformer_spec["scaleMetricType"] = "Utilization"
        if not via_server:
            transformer_spec["storageUris"] = [{"uri": storage_uri, "mountPath": "/mnt/models"}]
        spec["transformer"] = transformer_spec
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": KIND,
        "metadata": {
            "name": name,
            "namespace": namespace or settings.namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": spec,
    }


def render_feast_config_map(settings: MlopsSettings | None = None, *, name: str = "feast-config") -> dict:
    """Render the ConfigMap with the resolved ``feature_store.yaml`` the transformer reads.

    Secrets stay ``${VAR}`` placeholders (FeastHook redacts them); Feast expands them from the transformer's
    environment, which the ``feast-online-store`` Secret fills.
    """
    from mlops_provider.hooks.feast import FeastHook

    if settings is None:
        from mlops_provider.settings import get_settings

        settings = get_settings()
    text = FeastHook().write_resolved_config(settings.local_root / "manifests" / "feature_store.yaml").read_text()
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": settings.namespace,
            "labels": {"app.kubernetes.io/managed-by": MANAGED_BY},
        },
        "data": {"feature_store.yaml": text},
    }


def merge_patch_for(current: dict, desired: dict) -> dict:
    """JSON merge patch that turns the mapping ``current`` into ``desired`` (``None`` removes a key)."""
    return {**{key: None for key in current if key not in desired}, **desired}


def _champion_storage_uri(settings: MlopsSettings) -> tuple[str, str | None]:
    try:
        from mlops_provider.hooks.mlflow import MlflowHook

        hook = MlflowHook(settings.mlflow_conn_id)
        version = hook.get_version_by_alias(settings.model_name, CHAMPION)
        if version is not None:
            return hook.get_client().get_model_version_download_uri(settings.model_name, version.version), str(
                version.version
            )
    except Exception:  # rendering needs no registry: fall back to the alias URI the server resolves itself
        pass
    return f"models:/{settings.model_name}@{CHAMPION}", None


def render_serving_manifests(settings: MlopsSettings | None = None, *, storage_uri: str | None = None) -> list[dict]:
    """Render the ServingRuntime, the Feast ConfigMap and the champion's InferenceService for ``make render``.

    The storage URI is the current ``champion``'s artifact location when the registry answers, else
    ``models:/<model>@champion`` (resolved by the server at start-up).
    """
    if settings is None:
        from mlops_provider.settings import get_settings

        settings = get_settings()
    version = None
    if storage_uri is None:
        storage_uri, version = _champion_storage_uri(settings)
    return [
        render_serving_runtime(settings),
        render_feast_config_map(settings),
        render_inference_service(settings.model_name, storage_uri, settings, model_version=version),
    ]


# ---------------------------------------------------------------------------------------------------------------------
# Analysis
# ---------------------------------------------------------------------------------------------------------------------
def _post_json(url: str, body: dict, timeout: float) -> tuple[int, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")[:500]
    except (OSError, ValueError) as exc:
        return 0, str(exc)


def v2_request(rows: Sequence[Sequence[float]]) -> dict:
    """Build a V2 infer request body with one FP32 tensor ``input-0``, kept out of the prediction log."""
    return {
        # Synthetic and smoke traffic must not reach drift monitoring through the served-request log.
        "parameters": {"mlops_log": False},
        "inputs": [
            {
                "name": "input-0",
                "shape": [len(rows), len(rows[0])],
                "datatype": "FP32",
                "data": [float(v) for r in rows for v in r],
            }
        ],
    }


def sample_rows(
    endpoint_url: str, model_name: str, training_set: dict | str | None = None, n_features: int | None = None
) -> list[list[float]]:
    """Rows for smoke requests: from the training set when given, else synthetic rows of the model's width.

    The width comes from the endpoint's V2 model metadata (``inputs[0].shape[-1]``), else ``n_features``.
    """
    manifest = training_set
    if isinstance(manifest, str) and manifest.strip().startswith("{"):
        manifest = json.loads(manifest)
    if isinstance(manifest, dict) and manifest.get("uri") and manifest.get("feature_columns"):
        from mlops_provider.storage import read_parquet

        frame = read_parquet(manifest["uri"])
        sample = frame[list(manifest["feature_columns"])].head(20).astype("float32")
        return sample.values.tolist()
    from mlops_provider.hooks.local_serving import http_get_json

    status, metadata = http_get_json(f"{endpoint_url.rstrip('/')}/v2/models/{model_name}", timeout=5.0)
    width = None
    if status == 200 and isinstance(metadata, dict):
        try:
            width = int(metadata["inputs"][0]["shape"][-1])
        except (KeyError, IndexError, TypeError, ValueError):
            width = None
    width = width if width and width > 0 else int(n_features or 0)
    if not width:
        raise RolloutFailedError(
            f"Cannot build smoke requests: {endpoint_url} did not report the model's input shape (HTTP {status}: "
            f"{str(metadata)[:200]}) and no training_set was given.",
            reason="MetadataUnavailable",
        )
    # Deterministic, varied rows within the usual range of scaled features.
    return [[((i * 7 + j * 3) % 11) / 10.0 for j in range(width)] for i in range(10)]


def smoke_check(
    endpoint_url: str,
    model_name: str,
    rows: Sequence[Sequence[float]],
    *,
    requests: int = 10,
    max_error_rate: float = 0.0,
    max_latency_ms: float = 500.0,
    prediction_range: tuple[float, float] = (0.0, 1.0),
    timeout: float = 10.0,
) -> dict:
    """Send ``requests`` single-row V2 requests and judge error rate, p99 latency and prediction sanity."""
    url = f"{endpoint_url.rstrip('/')}/v2/models/{model_name}/infer"
    latencies, errors, insane, predictions = [], [], [], []
    for i in range(requests):
        row = rows[i % len(rows)]
        started = time.perf_counter()
        status, body = _post_json(url, v2_request([row]), timeout)
        latencies.append((time.perf_counter() - started) * 1000)
        if status != 200:
            errors.append(f"HTTP {status or 'error'}: {str(body)[:200]}")
            continue
        try:
            output = body["outputs"][0]
            values = [float(v) for v in output["data"]]
        except (KeyError, IndexError, TypeError, ValueError):
            errors.append(f"malformed response {str(body)[:200]}")
            continue
        if len(values) != 1 or not all(
            math.isfinite(v) and prediction_range[0] <= v <= prediction_range[1] for v in values
        ):
            insane.append(values)
        predictions.extend(values)
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, math.ceil(0.99 * len(latencies)) - 1)] if latencies else float("inf")
    error_rate = len(errors) / max(1, requests)
    failures = []
    if error_rate > max_error_rate:
        failures.append(f"error rate {error_rate:.0%} > {max_error_rate:.0%} ({errors[0]})")
    if p99 > max_latency_ms:
        failures.append(f"p99 latency {p99:.1f} ms > {max_latency_ms:.0f} ms")
    if insane:
        failures.append(
            f"{len(insane)} prediction(s) outside {list(prediction_range)} or not one per row: {insane[:3]}"
        )
    return {
        "ok": not failures,
        "failures": failures,
        "error_rate": error_rate,
        "p99_ms": round(p99, 2),
        "p50_ms": round(latencies[len(latencies) // 2], 2) if latencies else None,
        "requests": requests,
        "mean_prediction": sum(predictions) / len(predictions) if predictions else None,
    }


# ---------------------------------------------------------------------------------------------------------------------
# Operators
# ---------------------------------------------------------------------------------------------------------------------
class ModelDeployOperator(BaseOperator):
    """Deploy the candidate the evaluation gate approved; promote it to ``champion`` only after a healthy rollout.

    ``backend="kserve"``: create or patch the InferenceService; the first deployment goes straight to 100 %, a
    new version goes out as a canary at ``canary_traffic_percent`` (optionally stepped by ``step_weight`` up to
    ``max_weight``), is analysed, then promoted (100 %) or rolled back (traffic to the previous revision, spec
    back to the previous model). ``backend="local"``: start the new version blue/green next to the live one on
    this machine, analyse it, then switch the stable endpoint or discard it.

    Returns ``{"model_name", "model_version", "endpoint_url", "backend", "status", "revision", "protocol",
    "strategy", "traffic", "analysis"}``. A rollback pushes that XCom (``status="rolled_back"``) and fails the
    task with :class:`~mlops_provider.exceptions.RolloutRolledBackError` (no retries).

    :param model_name: registered model name. (templated)
    :param candidate: the evaluation gate's XCom (``candidate_version``, ``artifact_uri``, ``decision``) or the
        training XCom (``model_version``, ``artifact_uri``). (templated)
    :param backend: ``local`` or ``kserve``; default ``[mlops] serving_backend``. (templated)
    :param storage_uri: override of the model location; default the candidate's ``artifact_uri``. (templated)
    :param inference_service_name: default the model name as a DNS label. (templated)
    :param namespace: default ``[mlops] namespace``. (templated)
    :param kubernetes_conn_id: default ``[mlops] kubernetes_conn_id``. (templated)
    :param mlflow_conn_id: default ``[mlops] mlflow_conn_id``. (templated)
    :param endpoint_url: URL the analysis sends requests to; default the per-revision (tag) URL KServe reports
        for the canary, else ``status.url``. (templated)
    :param canary_traffic_percent: the canary's first traffic share.
    :param step_weight: raise the share by this much after each passing step (0: one step).
    :param max_weight: largest canary share before promotion.
    :param analysis_interval: seconds between checks.
    :param analysis_iterations: passing checks per step.
    :param failure_threshold: failed checks that trigger a rollback.
    :param progress_deadline: seconds the whole rollout may take (readiness waits included).
    :param smoke_requests: requests per check.
    :param max_error_rate: largest tolerated share of failed requests per check.
    :param max_latency_ms: largest tolerated p99 latency per check.
    :param prediction_range: predictions must be finite and within this range.
    :param raw_deployment_strategy: ``rolling`` or ``refuse`` when the InferenceService runs in RawDeployment mode.
    :param deployment_mode: mode of a newly created InferenceService (``Serverless`` or ``RawDeployment``).
    :param manifest_options: extra keyword arguments of :func:`render_inference_service` (replicas, resources...).
    :param training_set: training-set manifest (``uri``, ``feature_columns``) to draw smoke rows from. (templated)
    :param local_transformer: start the Feast transformer locally (None: when the Feast repo exists).
    :param deferrable: wait for readiness in the triggerer.
    :param poll_interval: seconds between readiness reads.
    """

    template_fields: Sequence[str] = (
        "model_name",
        "candidate",
        "backend",
        "storage_uri",
        "inference_service_name",
        "namespace",
        "kubernetes_conn_id",
        "mlflow_conn_id",
        "endpoint_url",
        "training_set",
    )
    operator_extra_links = (KServeEndpointLink(),)
    ui_color = "#c7e9f1"

    def __init__(
        self,
        *,
        model_name: str,
        candidate: dict | str,
        backend: str | None = None,
        storage_uri: str | None = None,
        inference_service_name: str | None = None,
        namespace: str | None = None,
        kubernetes_conn_id: str | None = None,
        mlflow_conn_id: str | None = None,
        endpoint_url: str | None = None,
        canary_traffic_percent: int = 10,
        step_weight: int = 0,
        max_weight: int = 50,
        analysis_interval: float = 5.0,
        analysis_iterations: int = 3,
        failure_threshold: int = 2,
        progress_deadline: float = 600.0,
        smoke_requests: int = 10,
        max_error_rate: float = 0.0,
        max_latency_ms: float = 500.0,
        prediction_range: tuple[float, float] = (0.0, 1.0),
        raw_deployment_strategy: str = "rolling",
        deployment_mode: str = "Serverless",
        manifest_options: dict | None = None,
        training_set: dict | str | None = None,
        local_transformer: bool | None = None,
        deferrable: bool | None = None,
        poll_interval: float = 5.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not 0 < canary_traffic_percent < 100:
            raise ValueError(f"canary_traffic_percent must be between 1 and 99, got {canary_traffic_percent}.")
        if raw_deployment_strategy not in ("rolling", "refuse"):
            raise ValueError(f"raw_deployment_strategy must be 'rolling' or 'refuse', got {raw_deployment_strategy!r}.")
        self.model_name = model_name
        self.candidate = candidate
        self.backend = backend
        self.storage_uri = storage_uri
        self.inference_service_name = inference_service_name
        self.namespace = namespace
        self.kubernetes_conn_id = kubernetes_conn_id
        self.mlflow_conn_id = mlflow_conn_id
        self.endpoint_url = endpoint_url
        self.canary_traffic_percent = canary_traffic_percent
        self.step_weight = step_weight
        self.max_weight = max(max_weight, canary_traffic_percent)
        self.analysis_interval = analysis_interval
        self.analysis_iterations = analysis_iterations
        self.failure_threshold = failure_threshold
        self.progress_deadline = progress_deadline
        self.smoke_requests = smoke_requests
        self.max_error_rate = max_error_rate
        self.max_latency_ms = max_latency_ms
        self.prediction_range = tuple(prediction_range)
        self.raw_deployment_strategy = raw_deployment_strategy
        self.deployment_mode = deployment_mode
        self.manifest_options = manifest_options or {}
        self.training_set = training_set
        self.local_transformer = local_transformer
        self.deferrable = _default_deferrable() if deferrable is None else deferrable
        self.poll_interval = poll_interval

    # -- shared helpers ------------------------------------------------------------------------------------------------
    @cached_property
    def settings(self) -> MlopsSettings:
        """Bundle settings."""
        from mlops_provider.settings import get_settings

        return get_settings()

    @cached_property
    def hook(self) -> KServeHook:
        """KServe hook on the Kubernetes connection."""
        from mlops_provider.hooks.kserve import KServeHook

        return KServeHook(
            kubernetes_conn_id=self.kubernetes_conn_id or self.settings.kubernetes_conn_id,
            namespace=self.namespace or self.settings.namespace,
        )

    @cached_property
    def local_hook(self) -> LocalServingHook:
        """Local serving backend."""
        from mlops_provider.hooks.local_serving import LocalServingHook

        return LocalServingHook(settings=self.settings)

    def _candidate(self) -> dict:
        candidate = self.candidate
        if isinstance(candidate, str):
            candidate = json.loads(candidate)
        if not isinstance(candidate, dict):
            raise MlopsError(f"candidate must be the evaluation gate's XCom dict, got {type(candidate).__name__}.")
        if candidate.get("decision") == "reject":
            raise AirflowSkipException(f"The evaluation gate rejected version {candidate.get('candidate_version')}.")
        version = candidate.get("candidate_version") or candidate.get("model_version")
        storage_uri = self.storage_uri or candidate.get("artifact_uri") or candidate.get("model_uri")
        if not version or not storage_uri:
            raise MlopsError(
                "candidate lacks the model version or its storage URI (expected candidate_version/model_version and "
                f"artifact_uri); got keys {sorted(candidate)}."
            )
        return {**candidate, "version": str(version), "storage_uri": storage_uri}

    def _analyze(self, endpoint_url: str, deadline: float, label: str) -> dict:
        """Run checks every ``analysis_interval`` until ``analysis_iterations`` pass or ``failure_threshold`` fail."""
        checks: list[dict] = []
        passed = failed = 0
        rows: list[list[float]] | None = None
        check: dict[str, Any]
        while True:
            if time.time() > deadline:
                return {
                    "passed": False,
                    "checks": checks,
                    "reason": "ProgressDeadlineExceeded",
                    "message": f"The rollout passed its progress deadline of {self.progress_deadline:.0f} s "
                    f"during the analysis of {label}.",
                }
            try:
                if rows is None:
                    rows = sample_rows(
                        endpoint_url, self.model_name, self.training_set, self.manifest_options.get("n_features")
                    )
            except RolloutFailedError as exc:  # an unreachable endpoint is a failed check, as in Flagger
                check = {"ok": False, "failures": [str(exc)], "error_rate": 1.0, "p99_ms": None, "requests": 0}
            else:
                check = smoke_check(
                    endpoint_url,
                    self.model_name,
                    rows,
                    requests=self.smoke_requests,
                    max_error_rate=self.max_error_rate,
                    max_latency_ms=self.max_latency_ms,
                    prediction_range=self.prediction_range,  # type: ignore[arg-type]
                )
            checks.append(check)
            if check["ok"]:
                passed += 1
                self.log.info("Analysis of %s: check %d passed (p99 %s ms)", label, len(checks), check["p99_ms"])
            else:
                failed += 1
                self.log.warning(
                    "Analysis of %s: check %d failed: %s", label, len(checks), "; ".join(check["failures"])
                )
            if failed >= self.failure_threshold:
                return {
                    "passed": False,
                    "checks": checks,
                    "reason": "AnalysisFailed",
                    "message": f"{failed} failed check(s) of {label} reached the failure threshold "
                    f"{self.failure_threshold}: {'; '.join(check['failures'] or ['see checks'])}",
                }
            if passed >= self.analysis_iterations:
                return {"passed": True, "checks": checks, "reason": "Passed", "message": f"{passed} check(s) passed."}
            time.sleep(self.analysis_interval)

    def _set_champion(self, version: str) -> None:
        from mlops_provider.hooks.mlflow import MlflowHook

        client = MlflowHook(self.mlflow_conn_id or self.settings.mlflow_conn_id).get_client()
        client.set_registered_model_alias(self.model_name, CHAMPION, version)
        self.log.info("Alias %s of %s now points to version %s", CHAMPION, self.model_name, version)

    def _finish(self, context: Context, result: dict) -> dict:
        KServeEndpointLink.persist(context, endpoint_url=result["endpoint_url"], model_name=result["model_name"])
        if result["status"] == "promoted":
            self._set_champion(result["model_version"])
            return result
        context["ti"].xcom_push(key="return_value", value=result)
        raise RolloutRolledBackError(
            f"Rollout of {result['model_name']} version {result['model_version']} was rolled back "
            f"({result['reason']}): {result['message']} The previous version keeps serving at {result['endpoint_url']}.",
            reason=result["reason"],
            rolled_back=True,
        )

    # -- entry points --------------------------------------------------------------------------------------------------
    def execute(self, context: Context) -> dict:
        """Deploy the candidate with the configured backend."""
        candidate = self._candidate()
        backend = self.backend or self.settings.serving_backend
        if backend == "local":
            return self._deploy_local(context, candidate)
        if backend != "kserve":
            raise MlopsError(f"backend must be 'local' or 'kserve', got {backend!r}.")
        return self._deploy_kserve(context, candidate)

    # -- local blue/green ----------------------------------------------------------------------------------------------
    def _deploy_local(self, context: Context, candidate: dict) -> dict:
        from mlops_provider.hooks.local_serving import feast_config_for_serving, mlflow_env

        hook = self.local_hook
        version, storage_uri = candidate["version"], candidate["storage_uri"]
        base = {
            "model_name": self.model_name,
            "model_version": version,
            "endpoint_url": hook.endpoint_url,
            "backend": "local",
            "protocol": "v2",
            "strategy": "blue_green",
        }
        hook.ensure_proxy()
        live = hook.active()
        if (
            live
            and live["model_name"] == self.model_name
            and live["model_version"] == version
            and live["storage_uri"] == storage_uri
        ):
            self.log.info(
                "Version %s is already live on %s (%s); nothing to replace.", version, hook.endpoint_url, live["color"]
            )
            hook.switch(live)  # re-assert the proxy's upstream (idempotent)
            return self._finish(
                context,
                {
                    **base,
                    "status": "promoted",
                    "revision": live["color"],
                    "traffic": {live["color"]: 100},
                    "analysis": None,
                },
            )
        deadline = time.time() + self.progress_deadline
        previous = live["color"] if live else None
        try:
            slot = hook.start_slot(
                self.model_name,
                storage_uri,
                version,
                feast_config=feast_config_for_serving(self.local_transformer),
                env=mlflow_env(storage_uri, self.mlflow_conn_id),
            )
        except RolloutFailedError as exc:
            if not live:
                raise
            return self._finish(
                context,
                {
                    **base,
                    "status": "rolled_back",
                    "revision": previous,
                    "traffic": {previous: 100},
                    "analysis": None,
                    "reason": exc.reason or "StartFailed",
                    "message": str(exc),
                },
            )
        analysis = self._analyze(slot["url"], deadline, f"{slot['color']} (version {version})")
        if not analysis["passed"]:
            hook.discard(slot)
            return self._finish(
                context,
                {
                    **base,
                    "status": "rolled_back",
                    "revision": previous,
                    "traffic": {previous: 100} if previous else {},
                    "analysis": analysis,
                    "reason": analysis["reason"],
                    "message": analysis["message"],
                },
            )
        hook.switch(slot)
        return self._finish(
            context,
            {
                **base,
                "status": "promoted",
                "revision": slot["color"],
                "traffic": {slot["color"]: 100},
                "analysis": analysis,
            },
        )

    # -- KServe ---------------------------------------------------------------------------------------------------------
    def _weights(self) -> list[int]:
        weights = [self.canary_traffic_percent]
        if self.step_weight > 0:
            while weights[-1] + self.step_weight <= self.max_weight:
                weights.append(weights[-1] + self.step_weight)
        return weights

    def _deploy_kserve(self, context: Context, candidate: dict) -> dict:
        from mlops_provider.settings import get_settings

        hook = self.hook
        name = self.inference_service_name or k8s_name(self.model_name)
        version, storage_uri = candidate["version"], candidate["storage_uri"]
        state: dict[str, Any] = {
            "name": name,
            "namespace": hook.namespace,
            "version": version,
            "storage_uri": storage_uri,
            "deadline": time.time() + self.progress_deadline,
            "weights": self._weights(),
            "step": 0,
        }
        existing = hook.get_inference_service(name)
        if existing is None:
            body = render_inference_service(
                self.model_name,
                storage_uri,
                get_settings(),
                name=name,
                namespace=hook.namespace,
                model_version=version,
                deployment_mode=self.deployment_mode,
                **self.manifest_options,
            )
            created = hook.create_inference_service(body)
            state.update(
                phase="first",
                strategy="create",
                generation=created["metadata"].get("generation"),
                mode=self.deployment_mode,
            )
            return self._wait(context, state)

        mode = deployment_mode(existing)
        state["mode"] = mode
        state["previous_uri"] = storage_uri_of(existing)
        current_model = existing["spec"]["predictor"].get("model") or {}
        state["previous_model"] = current_model
        desired_model = render_inference_service(
            self.model_name,
            storage_uri,
            get_settings(),
            name=name,
            namespace=hook.namespace,
            model_version=version,
            deployment_mode="RawDeployment" if mode in RAW_MODES else "Serverless",
            **self.manifest_options,
        )["spec"]["predictor"]["model"]
        state["new_model"] = desired_model
        model_patch = merge_patch_for(current_model, desired_model)
        state["previous_version"] = ((existing.get("metadata") or {}).get("annotations") or {}).get(VERSION_ANNOTATION)
        predictor = predictor_status(existing)
        state["previous_revision"] = predictor.get("latestRolledoutRevision") or predictor.get("latestReadyRevision")
        if state["previous_uri"] == storage_uri and existing["spec"]["predictor"].get("canaryTrafficPercent") in (
            None,
            100,
        ):
            self.log.info("InferenceService %s already serves %s; checking it is Ready.", name, storage_uri)
            state.update(phase="promote", strategy="unchanged", generation=existing["metadata"].get("generation"))
            return self._wait(context, state)
        version_meta = {
            "metadata": {
                "annotations": {VERSION_ANNOTATION: version},
                "labels": {"mlops.example.com/model-version": version},
            }
        }
        if mode in RAW_MODES:
            if self.raw_deployment_strategy == "refuse":
                raise RolloutFailedError(
                    f"InferenceService {hook.namespace}/{name} runs in {mode} mode, where KServe ignores "
                    "canaryTrafficPercent (no Knative revisions to split traffic between), and "
                    "raw_deployment_strategy='refuse': nothing was changed. Use Serverless mode for canaries, or "
                    "raw_deployment_strategy='rolling' for a readiness-gated rolling update with analysis and rollback.",
                    reason="CanaryUnsupportedInRawDeployment",
                )
            self.log.info(
                "%s mode: rolling update (no traffic split is possible), then analysis at full traffic.", mode
            )
            patched = hook.patch_inference_service(
                name,
                {
                    **version_meta,
                    "spec": {"predictor": {"canaryTrafficPercent": None, "model": model_patch}},
                },
            )
            state.update(phase="rolling", strategy="rolling", generation=patched["metadata"].get("generation"))
            return self._wait(context, state)
        weight = state["weights"][0]
        self.log.info("Serverless mode: canary of version %s at %d%% of traffic", version, weight)
        patched = hook.patch_inference_service(
            name,
            {
                **version_meta,
                "spec": {"predictor": {"canaryTrafficPercent": weight, "model": model_patch}},
            },
        )
        state.update(phase="canary", strategy="canary", generation=patched["metadata"].get("generation"))
        return self._wait(context, state)

    def _wait(self, context: Context, state: dict) -> dict:
        """Wait until the InferenceService is Ready for the submitted generation: defer, or poll in the worker."""
        from mlops_provider.triggers.kserve import InferenceServiceReadyTrigger, evaluate_readiness

        if self.deferrable:
            isvc = self.hook.get_inference_service(state["name"])
            current = evaluate_readiness(isvc, state.get("generation"))
            if current["state"] in ("ready", "failed"):  # check once before deferring
                return self.execute_complete(context, {**current, "status": current["state"]}, state)
            self.defer(
                trigger=InferenceServiceReadyTrigger(
                    name=state["name"],
                    namespace=state["namespace"],
                    kubernetes_conn_id=self.hook.kubernetes_conn_id,
                    generation=state.get("generation"),
                    deadline=state["deadline"],
                    poll_interval=self.poll_interval,
                ),
                method_name="execute_complete",
                kwargs={"state": state},
            )
        while True:
            current = evaluate_readiness(self.hook.get_inference_service(state["name"]), state.get("generation"))
            if current["state"] in ("ready", "failed"):
                event = {**current, "status": current["state"]}
                break
            if time.time() >= state["deadline"]:
                event = {**current, "status": "timeout"}
                break
            time.sleep(min(self.poll_interval, max(0.0, state["deadline"] - time.time())))
        return self.execute_complete(context, event, state)

    def execute_complete(self, context: Context, event: dict, state: dict) -> dict:
        """Continue the rollout after a readiness wait (also called inline when not deferring)."""
        phase = state["phase"]
        status = event.get("status")
        self.log.info("InferenceService %s after %s: %s (%s)", state["name"], phase, status, event.get("reason"))
        if status != "ready":
            detail = f"{event.get('reason')}: {event.get('message')}"
            if status == "timeout":
                detail = (
                    f"not Ready within the progress deadline of {self.progress_deadline:.0f} s; last condition {detail}"
                )
            if phase == "first":
                raise RolloutFailedError(
                    f"First deployment of {self.model_name} version {state['version']} as InferenceService "
                    f"{state['namespace']}/{state['name']} is {detail}. Nothing to roll back to; the alias "
                    f"{CHAMPION!r} was not moved.",
                    reason=event.get("reason"),
                )
            if phase == "rollback":
                raise RolloutFailedError(
                    f"Rolling back InferenceService {state['namespace']}/{state['name']} to {state.get('previous_uri')} "
                    f"did not complete: {detail}. Check the InferenceService; the alias {CHAMPION!r} was not moved.",
                    reason=event.get("reason"),
                )
            return self._rollback(context, state, event.get("reason") or "NotReady", f"The new revision is {detail}.")
        isvc = self.hook.get_inference_service(state["name"]) or {}
        if phase == "rollback":
            return self._rolled_back(context, state, isvc)
        if phase == "canary":
            return self._after_canary_ready(context, state, isvc)
        # first, rolling (analysis at full traffic) and promote (analysis already done)
        if not is_raw_mode(isvc):
            latest_share = self._latest_share(isvc)
            if latest_share is not None and latest_share != 100:
                return self._rollback(
                    context,
                    state,
                    "TrafficNotShifted",
                    f"KServe reports {latest_share}% of traffic on the new revision after promotion, not 100%.",
                )
        analysis = state.get("analysis")
        if phase in ("first", "rolling"):
            url = self.endpoint_url or endpoint_url_of(isvc)
            if not url:
                return self._rollback(context, state, "NoEndpoint", "KServe reports no URL for the InferenceService.")
            analysis = self._analyze(url, state["deadline"], f"version {state['version']}")
            if not analysis["passed"]:
                if phase == "first":
                    raise RolloutFailedError(
                        f"First deployment of {self.model_name} version {state['version']} failed its analysis "
                        f"({analysis['reason']}): {analysis['message']} Nothing to roll back to; alias {CHAMPION!r} not moved.",
                        reason=analysis["reason"],
                    )
                state["analysis"] = analysis
                return self._rollback(context, state, analysis["reason"], analysis["message"])
        return self._finish(
            context,
            {
                "model_name": self.model_name,
                "model_version": state["version"],
                "endpoint_url": endpoint_url_of(isvc) or "",
                "backend": "kserve",
                "status": "promoted",
                "revision": predictor_status(isvc).get("latestReadyRevision"),
                "protocol": "v2",
                "strategy": state.get("strategy"),
                "deployment_mode": deployment_mode(isvc),
                "traffic": {t.get("revisionName"): t.get("percent") for t in predictor_traffic(isvc)},
                "analysis": analysis,
            },
        )

    @staticmethod
    def _latest_share(isvc: dict) -> int | None:
        traffic = predictor_traffic(isvc)
        if not traffic:
            return None
        latest = predictor_status(isvc).get("latestReadyRevision")
        return sum(
            int(t.get("percent") or 0)
            for t in traffic
            if t.get("latestRevision") or (latest and t.get("revisionName") == latest)
        )

    def _after_canary_ready(self, context: Context, state: dict, isvc: dict) -> dict:
        weight = state["weights"][state["step"]]
        if is_raw_mode(isvc):
            return self._rollback(
                context,
                state,
                "CanaryNotApplied",
                f"KServe reports deployment mode {deployment_mode(isvc)}: canaryTrafficPercent is ignored there, so no "
                "canary ran. Use raw_deployment_strategy (rolling/refuse) for raw InferenceServices.",
            )
        latest_share = self._latest_share(isvc)
        if latest_share != weight:
            return self._rollback(
                context,
                state,
                "CanaryNotApplied",
                f"Requested {weight}% for the canary but status.components.predictor.traffic reports "
                f"{predictor_traffic(isvc) or 'no traffic'}; the canary did not happen.",
            )
        url = self.endpoint_url or self._canary_url(isvc)
        if not url:
            return self._rollback(context, state, "NoEndpoint", "KServe reports no URL for the canary.")
        analysis = self._analyze(url, state["deadline"], f"canary at {weight}% (version {state['version']})")
        state.setdefault("analyses", []).append({"weight": weight, **analysis})
        state["analysis"] = analysis
        if not analysis["passed"]:
            return self._rollback(context, state, analysis["reason"], analysis["message"])
        if state["step"] + 1 < len(state["weights"]):
            state["step"] += 1
            next_weight = state["weights"][state["step"]]
            self.log.info("Canary step passed; raising its traffic to %d%%", next_weight)
            patched = self.hook.patch_inference_service(
                state["name"], {"spec": {"predictor": {"canaryTrafficPercent": next_weight}}}
            )
            state["generation"] = patched["metadata"].get("generation")
            return self._wait(context, state)
        self.log.info("Canary analysis passed; promoting version %s to 100%% of traffic", state["version"])
        patched = self.hook.patch_inference_service(
            state["name"], {"spec": {"predictor": {"canaryTrafficPercent": None}}}
        )
        state.update(phase="promote", generation=patched["metadata"].get("generation"))
        return self._wait(context, state)

    @staticmethod
    def _canary_url(isvc: dict) -> str | None:
        for target in predictor_traffic(isvc):
            if target.get("tag") == "latest" and target.get("url"):
                return target["url"]
        return endpoint_url_of(isvc)

    def _rollback(self, context: Context, state: dict, reason: str, message: str) -> dict:
        if not state.get("previous_model"):
            raise RolloutFailedError(f"{message} No previous version to roll back to.", reason=reason)
        self.log.warning("Rolling back %s to %s: %s (%s)", state["name"], state["previous_uri"], message, reason)
        patch: dict[str, Any] = {"model": merge_patch_for(state.get("new_model") or {}, state["previous_model"])}
        # Serverless: 0% to the latest revision routes all traffic to the previously rolled-out one at once.
        patch["canaryTrafficPercent"] = None if state.get("mode") in RAW_MODES else 0
        metadata = (
            {"annotations": {VERSION_ANNOTATION: state.get("previous_version")}}
            if state.get("previous_version")
            else {}
        )
        patched = self.hook.patch_inference_service(state["name"], {"metadata": metadata, "spec": {"predictor": patch}})
        state.update(
            phase="rollback",
            generation=patched["metadata"].get("generation"),
            reason=reason,
            message=message,
            # The rollback gets its own deadline: it must not be cut short by the failed rollout's.
            deadline=time.time() + self.progress_deadline,
        )
        return self._wait(context, state)

    def _rolled_back(self, context: Context, state: dict, isvc: dict) -> dict:
        traffic = {t.get("revisionName"): t.get("percent") for t in predictor_traffic(isvc)}
        return self._finish(
            context,
            {
                "model_name": self.model_name,
                "model_version": state["version"],
                "endpoint_url": endpoint_url_of(isvc) or "",
                "backend": "kserve",
                "status": "rolled_back",
                "revision": state.get("previous_revision"),
                "protocol": "v2",
                "strategy": state.get("strategy"),
                "deployment_mode": deployment_mode(isvc),
                "traffic": traffic,
                "analysis": state.get("analysis"),
                "reason": state.get("reason"),
                "message": state.get("message"),
                "previous_version": state.get("previous_version"),
            },
        )


class ModelEndpointSmokeTestOperator(BaseOperator):
    """Send one real row through the deployed endpoint and check the answer.

    :param endpoint: the deploy task's XCom (``endpoint_url``, ``model_name``) or an endpoint URL. (templated)
    :param training_set: training-set manifest to take the row from (``uri``, ``feature_columns``); without it a
        row of zeros of the model's width is sent. (templated)
    :param model_name: model name when ``endpoint`` is a URL. (templated)
    :param prediction_range: the prediction must be finite and within this range.
    :param timeout: seconds per request.
    """

    template_fields: Sequence[str] = ("endpoint", "training_set", "model_name")

    def __init__(
        self,
        *,
        endpoint: dict | str,
        training_set: dict | str | None = None,
        model_name: str | None = None,
        prediction_range: tuple[float, float] = (0.0, 1.0),
        timeout: float = 10.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.endpoint = endpoint
        self.training_set = training_set
        self.model_name = model_name
        self.prediction_range = tuple(prediction_range)
        self.timeout = timeout

    def execute(self, context: Context) -> dict:
        """Send the row; return ``{"endpoint_url", "prediction", "latency_ms"}``."""
        endpoint = self.endpoint
        if isinstance(endpoint, str) and endpoint.strip().startswith("{"):
            endpoint = json.loads(endpoint)
        if isinstance(endpoint, dict):
            url, model_name = endpoint.get("endpoint_url"), self.model_name or endpoint.get("model_name")
        else:
            url, model_name = endpoint, self.model_name
        if not url or not model_name:
            raise MlopsError(
                f"The smoke test needs an endpoint URL and a model name; got {endpoint!r} and {model_name!r}."
            )
        rows = sample_rows(url, model_name, self.training_set)
        started = time.perf_counter()
        status, body = _post_json(f"{url.rstrip('/')}/v2/models/{model_name}/infer", v2_request(rows[:1]), self.timeout)
        latency_ms = (time.perf_counter() - started) * 1000
        if status != 200:
            raise MlopsError(
                f"Smoke request to {url} for {model_name} answered HTTP {status or 'no response'}: {str(body)[:300]}"
            )
        try:
            prediction = float(body["outputs"][0]["data"][0])
        except (KeyError, IndexError, TypeError, ValueError):
            raise MlopsError(f"Smoke request to {url} returned a malformed V2 response: {str(body)[:300]}") from None
        low, high = self.prediction_range
        if not (math.isfinite(prediction) and low <= prediction <= high):
            raise MlopsError(f"Smoke prediction {prediction} from {url} is outside [{low}, {high}].")
        self.log.info("Endpoint %s answered %.4f in %.1f ms", url, prediction, latency_ms)
        return {"endpoint_url": url, "prediction": prediction, "latency_ms": round(latency_ms, 2)}
