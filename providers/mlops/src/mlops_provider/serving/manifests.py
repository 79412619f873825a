"""Render the KServe objects the bundle submits, and the merge patches a rollout sends.

Everything here is a pure function returning a dict: the rollout manager (:mod:`~mlops_provider.serving.rollout`)
sends these patches, ``make render`` writes these objects, and the tests validate both against KServe's CRDs.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from typing import TYPE_CHECKING, Any

from mlops_provider.lineage import (
    CHAMPION,
    MANAGED_BY,
    MODEL_NAME_LABEL,
    MODEL_VERSION_ANNOTATION,
    MODEL_VERSION_LABEL,
)
from mlops_provider.serving.status import (
    DEPLOYMENT_MODE_ANNOTATION,
    GROUP,
    ISTIO_GROUP,
    ISTIO_PLURALS,
    ISTIO_VERSION,
    KIND,
    PLURAL,
    RAW_MODES,
    VERSION,
)
from mlops_provider.settings import MlopsConfigError
from mlops_provider.spec.model import SERVING_MODES

if TYPE_CHECKING:
    from mlops_provider.settings import MlopsSettings

log = logging.getLogger(__name__)

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
# URI schemes KServe's storage initializer downloads into /mnt/models (file:// and local paths are kept as
# storageUri too: they only work where the path is mounted, e.g. a kind cluster or the tests).
STORAGE_INITIALIZER_SCHEMES = (
    "s3://", "gs://", "pvc://", "http://", "https://", "hdfs://", "webhdfs://", "hf://", "oci://", "file://", "/",
)  # fmt: skip
FEAST_CONFIG_MOUNT = "/etc/feast"
DEFAULT_RUNTIME = "mlops-xgboost"


def k8s_name(model_name: str) -> str:
    """Turn a model name into a DNS-1035 label usable as an InferenceService name."""
    name = re.sub(r"[^a-z0-9-]+", "-", model_name.lower()).strip("-")
    if not name or not name[0].isalpha():
        name = f"m-{name}"
    return name[:45].rstrip("-")


def label_value(value: str) -> str:
    """Turn ``value`` into a valid label value (63 characters of ``[A-Za-z0-9_.-]``)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", value)[:63]


def _settings(settings: MlopsSettings | None) -> MlopsSettings:
    if settings is not None:
        return settings
    from mlops_provider.settings import get_settings

    return get_settings()


def render_serving_runtime(
    settings: MlopsSettings | None = None, *, name: str = DEFAULT_RUNTIME, image: str | None = None
) -> dict:
    """Render the ServingRuntime that runs ``mlops_serving`` (the bundle's image) for ``xgboost`` models."""
    settings = _settings(settings)
    return {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ServingRuntime",
        "metadata": {"name": name, "namespace": settings.namespace, "labels": {MANAGED_BY_LABEL: MANAGED_BY}},
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
    runtime: str = DEFAULT_RUNTIME,
    deployment_mode: str = "Serverless",
    canary_traffic_percent: int | None = None,
    min_replicas: int = 1,
    max_replicas: int = 3,
    scale_metric: str | None = None,
    scale_target: int | None = None,
    resources: dict | None = None,
    transformer: bool = True,
    transformer_resources: dict | None = None,
    serving_mode: str = "transformer",
    feature_service: str | None = None,
    feast_repo_path: str = "/app/include/feature_repo",
    feast_secret: str | None = "feast-online-store",
    feast_config_map: str = "feast-config",
    mlflow_secret: str | None = "mlflow-credentials",
    prediction_log_uri: str | None = None,
    enable_tag_routing: bool = True,
    service_account: str | None = None,
    annotations: dict[str, str] | None = None,
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
    :param transformer: look the features of entity requests up in Feast (``False``: the endpoint takes feature
        rows only).
    :param serving_mode: with ``transformer``, where the lookup runs: ``transformer`` (a Feast transformer in
        front of the predictor) or ``fused`` (in the predictor's own process, which then mounts the Feast
        configuration; no transformer).
    :param feature_service: the Feast FeatureService the model was trained on (from its training-set manifest);
        required with ``transformer``.
    :param feast_secret: Secret with the online store's credentials (referenced, never inlined).
    :param feast_config_map: ConfigMap holding the resolved ``feature_store.yaml`` (see :func:`render_feast_config_map`).
    :param mlflow_secret: Secret with ``MLFLOW_TRACKING_URI``/credentials for ``models:/`` URIs.
    :param annotations: extra annotations (e.g. the rollout state).
    :return: the manifest as a dict (validates against the InferenceService CRD schema).
    """
    settings = _settings(settings)
    raw = deployment_mode in RAW_MODES
    if raw and canary_traffic_percent not in (None, 100):
        raise ValueError(
            f"canaryTrafficPercent={canary_traffic_percent} has no effect in {deployment_mode} mode (no Knative "
            "revisions); render without it and roll out with raw_deployment_strategy='rolling'."
        )
    if serving_mode not in SERVING_MODES:
        raise ValueError(f"serving_mode={serving_mode!r} is not one of {SERVING_MODES}.")
    if transformer and not feature_service:
        raise ValueError(
            f"The Feast transformer of {model_name} needs the model's feature_service (the FeatureService its "
            "training set was built from); pass it, or render with transformer=False."
        )
    scale_metric = scale_metric or ("cpu" if raw else "concurrency")
    if raw and scale_metric in ("concurrency", "rps"):
        raise ValueError(f"scale_metric={scale_metric!r} needs Knative; in {deployment_mode} mode use cpu or memory.")
    scale_target = scale_target if scale_target is not None else (70 if scale_metric in ("cpu", "memory") else 10)
    name = name or k8s_name(model_name)
    version = str(model_version) if model_version is not None else None
    labels = {MANAGED_BY_LABEL: MANAGED_BY, MODEL_NAME_LABEL: k8s_name(model_name)}
    meta_annotations = {DEPLOYMENT_MODE_ANNOTATION: deployment_mode}
    if version:
        labels[MODEL_VERSION_LABEL] = label_value(version)
        meta_annotations[MODEL_VERSION_ANNOTATION] = version
    if enable_tag_routing and not raw:
        # Per-revision URLs (latest-/prev-) so the analysis can target the canary itself.
        meta_annotations["serving.kserve.io/enable-tag-routing"] = "true"
    if not raw:
        meta_annotations["serving.kserve.io/enable-prometheus-scraping"] = "true"
    meta_annotations.update(annotations or {})

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
    fused = transformer and serving_mode == "fused"
    env_from = [
        {"secretRef": {"name": s, "optional": True}}
        for s in (feast_secret if fused else None, mlflow_secret if via_server else None)
        if s
    ]
    if via_server:
        args.append(f"--storage_uri={storage_uri}")
    else:
        model["storageUri"] = storage_uri
    if fused:  # the runtime's --component=predictor is overridden: KServe appends these args to the runtime's
        args += [
            "--component=fused",
            f"--feast_repo_path={feast_repo_path}",
            f"--feature_service={feature_service}",
            f"--feast_config={FEAST_CONFIG_MOUNT}/feature_store.yaml",
        ]
        model["volumeMounts"] = [{"name": "feast-config", "mountPath": FEAST_CONFIG_MOUNT, "readOnly": True}]
    if env_from:
        model["envFrom"] = env_from
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
    if fused:
        predictor["volumes"] = [{"name": "feast-config", "configMap": {"name": feast_config_map}}]
    spec: dict[str, Any] = {"predictor": predictor}
    if transformer and not fused:
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
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {
            "name": name,
            "namespace": namespace or settings.namespace,
            "labels": labels,
            "annotations": meta_annotations,
        },
        "spec": spec,
    }


def render_feast_config_map(settings: MlopsSettings | None = None, *, name: str = "feast-config") -> dict:
    """Render the ConfigMap with the resolved ``feature_store.yaml`` the transformer reads.

    Secrets stay ``${VAR}`` placeholders (FeastHook redacts them); Feast expands them from the transformer's
    environment, which the ``feast-online-store`` Secret fills.
    """
    from mlops_provider.hooks.feast import FeastHook

    settings = _settings(settings)
    text = FeastHook().write_resolved_config(settings.local_root / "manifests" / "feature_store.yaml").read_text()
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": settings.namespace, "labels": {MANAGED_BY_LABEL: MANAGED_BY}},
        "data": {"feature_store.yaml": text},
    }


# ---------------------------------------------------------------------------------------------------------------------
# Patches (JSON merge patches: ``None`` deletes a field)
# ---------------------------------------------------------------------------------------------------------------------
def merge_patch_for(current: dict, desired: dict) -> dict:
    """JSON merge patch that turns the mapping ``current`` into ``desired`` (``None`` removes a key)."""
    return {**{key: None for key in current if key not in desired}, **desired}


def _metadata(version: str | None, annotations: dict[str, str] | None) -> dict[str, Any]:
    meta_annotations: dict[str, Any] = dict(annotations or {})
    labels: dict[str, Any] = {}
    if version:
        meta_annotations[MODEL_VERSION_ANNOTATION] = version
        labels[MODEL_VERSION_LABEL] = label_value(version)
    metadata: dict[str, Any] = {}
    if meta_annotations:
        metadata["annotations"] = meta_annotations
    if labels:
        metadata["labels"] = labels
    return metadata


def new_version_patch(
    current_model: dict,
    desired_model: dict,
    version: str,
    *,
    canary_traffic_percent: int | None,
    annotations: dict[str, str] | None = None,
) -> dict:
    """Patch that puts a new model version in the predictor.

    :param canary_traffic_percent: the new revision's share (Serverless canary), or None for all traffic (a
        rolling update in raw mode; any earlier canary setting is removed).
    """
    return {
        "metadata": _metadata(version, annotations),
        "spec": {
            "predictor": {
                "canaryTrafficPercent": canary_traffic_percent,
                "model": merge_patch_for(current_model, desired_model),
            }
        },
    }


def traffic_patch(canary_traffic_percent: int | None, *, annotations: dict[str, str] | None = None) -> dict:
    """Patch that moves traffic only: a canary step (a percent) or the promotion (None: 100 % to the latest)."""
    return {
        "metadata": _metadata(None, annotations),
        "spec": {"predictor": {"canaryTrafficPercent": canary_traffic_percent}},
    }


def rollback_patch(
    new_model: dict,
    previous_model: dict,
    previous_version: str | None,
    *,
    raw: bool,
    annotations: dict[str, str] | None = None,
) -> dict:
    """Patch that returns the predictor to ``previous_model``.

    Serverless: 0 % to the latest revision routes all traffic to the previously rolled-out one at once, while the
    spec goes back so the next revision is the old model again. Raw: a rolling update back.
    """
    return {
        "metadata": _metadata(previous_version, annotations),
        "spec": {
            "predictor": {
                "model": merge_patch_for(new_model, previous_model),
                "canaryTrafficPercent": None if raw else 0,
            }
        },
    }


def annotations_patch(annotations: dict[str, str | None]) -> dict:
    """Patch that only changes annotations (no new generation, no new revision)."""
    return {"metadata": {"annotations": annotations}}


# ---------------------------------------------------------------------------------------------------------------------
# make render
# ---------------------------------------------------------------------------------------------------------------------
def _champion_lineage(settings: MlopsSettings) -> tuple[str | None, str | None, str | None]:
    """Return ``(storage_uri, version, feature_service)`` of the current champion, Nones when unknown."""
    try:
        from mlops_provider.hooks.mlflow import MlflowHook

        hook = MlflowHook(settings.mlflow_conn_id)
        version = hook.get_version_by_alias(settings.model_name, CHAMPION)
        if version is None:
            return None, None, None
        uri = hook.version_download_uri(settings.model_name, version.version)
        return uri, str(version.version), hook.feature_service_of_version(version)
    except Exception as exc:  # rendering needs no registry: fall back to the alias URI the server resolves
        log.info("No champion lineage from the registry (%s): rendering the alias URI.", exc)
        return None, None, None


def render_serving_manifests(
    settings: MlopsSettings | None = None,
    *,
    model_name: str | None = None,
    storage_uri: str | None = None,
    feature_service: str | None = None,
) -> list[dict]:
    """Render the ServingRuntime, the Feast ConfigMap and the champion's InferenceService for ``make render``.

    The storage URI is the current ``champion``'s artifact location when the registry answers, else
    ``models:/<model>@champion`` (resolved by the server at start-up). The transformer's FeatureService is
    ``feature_service``, else the champion's lineage (its ``mlops.feature_service`` tag); without either the
    InferenceService is rendered without the transformer. ``model_name`` defaults to ``[mlops] model_name``.
    """
    settings = _settings(settings)
    if model_name:
        settings = dataclasses.replace(settings, model_name=model_name)
    if not settings.model_name:
        raise MlopsConfigError("Rendering needs a model name: pass model_name or set AIRFLOW__MLOPS__MODEL_NAME.")
    version = None
    lineage_uri, lineage_version, lineage_service = _champion_lineage(settings)
    if storage_uri is None:
        storage_uri = lineage_uri or f"models:/{settings.model_name}@{CHAMPION}"
        version = lineage_version
    feature_service = feature_service or lineage_service
    if not feature_service:
        log.warning(
            "No FeatureService known for %s (no champion with a training-set manifest): the InferenceService is "
            "rendered without the Feast transformer.",
            settings.model_name,
        )
    return [
        render_serving_runtime(settings),
        render_feast_config_map(settings),
        render_inference_service(
            settings.model_name,
            storage_uri,
            settings,
            model_version=version,
            feature_service=feature_service,
            transformer=bool(feature_service),
        ),
    ]


#: Role of Airflow's workers for KServe rollouts (namespaced; nothing cluster-wide).
KSERVE_DEPLOYER_ROLE = "mlops-kserve-deployer"
#: What the rollout manager does, per API group and resource: read and follow InferenceServices, create the first
#: one, patch the rest; a shadow step creates (or replaces, on retry) and deletes its challenger InferenceService
#: and the Istio VirtualService (mirror) and DestinationRule in front of it.
KSERVE_ROLE_RULES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (GROUP, PLURAL, ("get", "list", "watch", "create", "patch", "update", "delete")),
    (ISTIO_GROUP, ISTIO_PLURALS["VirtualService"], ("get", "create", "update", "delete")),
    (ISTIO_GROUP, ISTIO_PLURALS["DestinationRule"], ("get", "create", "update", "delete")),
)


def render_kserve_rbac(namespace: str, service_account: str | None = None) -> list[dict[str, Any]]:
    """Return the Role and RoleBinding that let Airflow's workers roll out InferenceServices in ``namespace``.

    ``Role/mlops-kserve-deployer`` (:data:`KSERVE_ROLE_RULES`): ``serving.kserve.io`` ``inferenceservices`` and, for
    shadow steps, ``networking.istio.io`` ``virtualservices``/``destinationrules``, bound to ``service_account``
    (default: the workers' ``airflow-worker``, the one the training RBAC renders). No other resource, no
    ClusterRole.
    """
    from mlops_provider.training.manifests import LAUNCHER_SERVICE_ACCOUNT

    labels = {"app.kubernetes.io/part-of": "mlops", "app.kubernetes.io/component": "serving"}
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": KSERVE_DEPLOYER_ROLE, "namespace": namespace, "labels": labels},
            "rules": [
                {"apiGroups": [group], "resources": [resource], "verbs": list(verbs)}
                for group, resource, verbs in KSERVE_ROLE_RULES
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": KSERVE_DEPLOYER_ROLE, "namespace": namespace, "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": KSERVE_DEPLOYER_ROLE},
            "subjects": [
                {
                    "kind": "ServiceAccount",
                    "name": service_account or LAUNCHER_SERVICE_ACCOUNT,
                    "namespace": namespace,
                }
            ],
        },
    ]


ISTIO_API_VERSION = f"{ISTIO_GROUP}/{ISTIO_VERSION}"
#: Mirrored requests waiting for a challenger connection; beyond it Istio sheds them (503 to nobody: mirrors are
#: fire-and-forget), so a slow challenger never holds the champion's traffic.
SHADOW_MAX_PENDING_REQUESTS = 64
PREDICTOR_SERVICE_PORT = 80


def predictor_host(name: str, namespace: str) -> str:
    """The cluster DNS name of an InferenceService's predictor Service (KServe names it ``<name>-predictor``)."""
    return f"{name}-predictor.{namespace}.svc.cluster.local"


def challenger_name(name: str) -> str:
    """The InferenceService name of ``name``'s shadow challenger."""
    return f"{name[:34].rstrip('-')}-challenger"


def render_istio_shadow(
    model_name: str,
    settings: MlopsSettings | None = None,
    *,
    name: str | None = None,
    namespace: str | None = None,
    challenger: str | None = None,
    mirror_percent: float = 100.0,
) -> list[dict[str, Any]]:
    """Render the Istio objects that mirror the champion's predictor traffic to the challenger's predictor.

    ``VirtualService/<name>-shadow``: requests to the champion's predictor Service (from its transformer, or any
    client in the mesh) are answered by it and, for ``mirror_percent`` % of them, copied to the challenger's
    predictor; Istio never waits for nor returns the mirror's answer. ``DestinationRule/<challenger>-predictor``:
    bounds the mirror's pending requests and ejects a failing challenger, so a slow or broken challenger costs the
    champion nothing.

    :param model_name: registered model name.
    :param name: the champion's InferenceService (default the model name as a DNS label).
    :param challenger: the challenger's InferenceService (default :func:`challenger_name`).
    :param mirror_percent: share of requests mirrored, 0-100.
    """
    if not 0 <= mirror_percent <= 100:
        raise MlopsConfigError(f"mirror_percent must be between 0 and 100, got {mirror_percent}.")
    settings = _settings(settings)
    name = name or k8s_name(model_name)
    challenger = challenger or challenger_name(name)
    namespace = namespace or settings.namespace
    labels = {
        MANAGED_BY_LABEL: MANAGED_BY,
        MODEL_NAME_LABEL: label_value(model_name),
        "app.kubernetes.io/component": "shadow",
    }
    champion_host, challenger_host = predictor_host(name, namespace), predictor_host(challenger, namespace)
    port = {"number": PREDICTOR_SERVICE_PORT}
    virtual_service = {
        "apiVersion": ISTIO_API_VERSION,
        "kind": "VirtualService",
        "metadata": {"name": f"{name}-shadow", "namespace": namespace, "labels": labels},
        "spec": {
            "hosts": [champion_host],
            "http": [
                {
                    "name": "shadow",
                    "route": [{"destination": {"host": champion_host, "port": port}, "weight": 100}],
                    "mirror": {"host": challenger_host, "port": port},
                    "mirrorPercentage": {"value": float(mirror_percent)},
                }
            ],
        },
    }
    destination_rule = {
        "apiVersion": ISTIO_API_VERSION,
        "kind": "DestinationRule",
        "metadata": {"name": f"{challenger}-predictor", "namespace": namespace, "labels": labels},
        "spec": {
            "host": challenger_host,
            "trafficPolicy": {
                "connectionPool": {"http": {"http1MaxPendingRequests": SHADOW_MAX_PENDING_REQUESTS}},
                "outlierDetection": {"consecutive5xxErrors": 5, "interval": "10s", "baseEjectionTime": "30s"},
                "tls": {"mode": "ISTIO_MUTUAL"},
            },
        },
    }
    return [virtual_service, destination_rule]


def render_shadow_manifests(
    settings: MlopsSettings | None = None, *, model_name: str | None = None, mirror_percent: float = 100.0
) -> list[dict[str, Any]]:
    """Render the challenger's InferenceService and the Istio shadow in front of the champion, for ``make render``.

    The challenger serves ``models:/<model>@challenger`` without the transformer: the mirrored requests are the
    champion predictor's, features already looked up.
    """
    settings = _settings(settings)
    model_name = model_name or settings.model_name
    if not model_name:
        raise MlopsConfigError("Rendering needs a model name: pass model_name or set AIRFLOW__MLOPS__MODEL_NAME.")
    name = k8s_name(model_name)
    challenger = render_inference_service(
        model_name,
        f"models:/{model_name}@challenger",
        settings,
        name=challenger_name(name),
        transformer=False,
    )
    return [challenger, *render_istio_shadow(model_name, settings, name=name, mirror_percent=mirror_percent)]
