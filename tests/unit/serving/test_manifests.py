"""Every InferenceService and ServingRuntime the bundle renders validates against KServe's CRD schemas.

The schemas are copies of the CRDs in ``tests/schemas/kserve/``. Besides JSON-schema validation the test rejects
fields the schema does not declare, as the API server's strict field validation would (instead of pruning them).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest
import yaml

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas" / "kserve"
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


@cache
def crd_schema(kind: str) -> dict:
    name = {
        "InferenceService": "serving.kserve.io_inferenceservices.yaml",
        "ServingRuntime": "serving.kserve.io_servingruntimes.yaml",
    }[kind]
    crd = yaml.load((SCHEMAS / name).read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def unknown_fields(instance, schema: dict, path: str = "") -> list[str]:
    """Paths of fields in ``instance`` that ``schema`` does not declare (strict field validation)."""
    found: list[str] = []
    if isinstance(instance, dict) and schema.get("type") == "object" and "properties" in schema:
        if schema.get("x-kubernetes-preserve-unknown-fields") or schema.get("additionalProperties"):
            return found
        for key, value in instance.items():
            if key not in schema["properties"]:
                found.append(f"{path}.{key}")
            else:
                found += unknown_fields(value, schema["properties"][key], f"{path}.{key}")
    elif isinstance(instance, list) and "items" in schema:
        for i, item in enumerate(instance):
            found += unknown_fields(item, schema["items"], f"{path}[{i}]")
    return found


def validate(manifest: dict) -> None:
    import jsonschema

    schema = crd_schema(manifest["kind"])
    jsonschema.validate(manifest, schema, cls=jsonschema.Draft7Validator)
    assert unknown_fields(manifest, schema) == []
    assert DNS_1035.match(manifest["metadata"]["name"])
    text = yaml.safe_dump(manifest)
    assert "password" not in text.lower() and "secretKey" not in text


FEATURE_SERVICE = "fraud_model_v1"


def _render(**opts):
    from mlops_provider.serving.manifests import render_inference_service

    opts.setdefault("feature_service", FEATURE_SERVICE)
    return render_inference_service("fraud_detector", "s3://models/fraud_detector/7", model_version="7", **opts)


@pytest.mark.parametrize(
    "opts",
    [
        {},
        {"canary_traffic_percent": 10},
        {"transformer": False, "min_replicas": 0, "max_replicas": 5, "scale_metric": "rps", "scale_target": 50},
        {"deployment_mode": "RawDeployment"},
        {"deployment_mode": "RawDeployment", "scale_metric": "memory", "scale_target": 80, "transformer": False},
        {
            "resources": {
                "requests": {"cpu": "2", "memory": "2Gi"},
                "limits": {"cpu": "2", "memory": "2Gi", "nvidia.com/gpu": 1},
            }
        },
        {"service_account": "model-reader", "prediction_log_uri": "gs://bucket/predictions/fraud_detector"},
    ],
)
def test_rendered_inference_services_validate_against_the_crd(opts):
    manifest = _render(**opts)
    validate(manifest)
    predictor = manifest["spec"]["predictor"]
    assert predictor["model"]["storageUri"] == "s3://models/fraud_detector/7"
    assert predictor["model"]["protocolVersion"] == "v2" and predictor["model"]["runtime"] == "mlops-xgboost"
    assert predictor["minReplicas"] == opts.get("min_replicas", 1) and predictor["maxReplicas"] == opts.get(
        "max_replicas", 3
    )
    assert manifest["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == opts.get(
        "deployment_mode", "Serverless"
    )
    assert predictor.get("canaryTrafficPercent") == opts.get("canary_traffic_percent")
    if opts.get("transformer", True):
        transformer = manifest["spec"]["transformer"]
        args = transformer["containers"][0]["args"]
        assert "--component=transformer" in args and f"--feature_service={FEATURE_SERVICE}" in args
        assert transformer["storageUris"] == [{"uri": "s3://models/fraud_detector/7", "mountPath": "/mnt/models"}]
        assert transformer["containers"][0]["envFrom"] == [
            {"secretRef": {"name": "feast-online-store", "optional": True}}
        ]
    else:
        assert "transformer" not in manifest["spec"]


@pytest.mark.parametrize("uri", ["models:/fraud_detector@champion", "mlflow-artifacts:/1/abc/artifacts/model"])
def test_mlflow_uris_are_resolved_by_the_server_with_credentials_from_a_secret(uri):
    from mlops_provider.serving.manifests import render_inference_service

    manifest = render_inference_service("fraud_detector", uri, feature_service=FEATURE_SERVICE)
    validate(manifest)
    model = manifest["spec"]["predictor"]["model"]
    assert "storageUri" not in model  # KServe's storage initializer cannot fetch MLflow URIs
    assert f"--storage_uri={uri}" in model["args"]
    assert model["envFrom"] == [{"secretRef": {"name": "mlflow-credentials", "optional": True}}]


def test_the_transformer_needs_the_feature_service_of_the_model():
    """No example default: without the model's FeatureService there is no transformer to render."""
    with pytest.raises(ValueError, match="needs the model's feature_service"):
        _render(feature_service=None)
    assert "transformer" not in _render(feature_service=None, transformer=False)["spec"]


def test_render_refuses_what_raw_deployment_cannot_do():
    with pytest.raises(ValueError, match="has no effect in RawDeployment"):
        _render(deployment_mode="RawDeployment", canary_traffic_percent=10)
    with pytest.raises(ValueError, match="needs Knative"):
        _render(deployment_mode="RawDeployment", scale_metric="concurrency")


def test_render_serving_manifests_for_make_render(monkeypatch, tmp_path, mlflow_connection):
    from mlops_provider.serving.manifests import render_serving_manifests
    from mlops_provider.settings import get_settings

    monkeypatch.setenv("AIRFLOW__MLOPS__LOCAL_ROOT", str(tmp_path))
    monkeypatch.setenv("AIRFLOW__MLOPS__MODEL_NAME", "fraud_detector_unreleased")  # no champion yet
    monkeypatch.setenv("AIRFLOW__MLOPS__SERVING_IMAGE", "registry.example.com/mlops-serving:1.2.3")
    monkeypatch.setenv("AIRFLOW__MLOPS__NAMESPACE", "models")
    objects = render_serving_manifests(get_settings(), feature_service=FEATURE_SERVICE)
    assert [o["kind"] for o in objects] == ["ServingRuntime", "ConfigMap", "InferenceService"]
    runtime, config_map, isvc = objects
    for manifest in (runtime, isvc):
        validate(manifest)
    assert {o["metadata"]["namespace"] for o in objects} == {"models"}
    feast_yaml = yaml.safe_load(config_map["data"]["feature_store.yaml"])
    assert feast_yaml["project"] == "fraud" and feast_yaml["online_store"]["type"] == "sqlite"
    transformer = isvc["spec"]["transformer"]
    assert transformer["volumes"] == [{"name": "feast-config", "configMap": {"name": "feast-config"}}]
    assert "--feast_config=/etc/feast/feature_store.yaml" in transformer["containers"][0]["args"]
    assert runtime["spec"]["containers"][0]["image"] == "registry.example.com/mlops-serving:1.2.3"
    assert isvc["spec"]["transformer"]["containers"][0]["image"] == "registry.example.com/mlops-serving:1.2.3"
    assert "--storage_uri=models:/fraud_detector_unreleased@champion" in isvc["spec"]["predictor"]["model"]["args"]
    assert isvc["metadata"]["name"] == "fraud-detector-unreleased"


def test_render_without_a_known_feature_service_leaves_the_transformer_out(monkeypatch, tmp_path, mlflow_connection):
    from mlops_provider.serving.manifests import render_serving_manifests
    from mlops_provider.settings import get_settings

    monkeypatch.setenv("AIRFLOW__MLOPS__LOCAL_ROOT", str(tmp_path))
    monkeypatch.setenv("AIRFLOW__MLOPS__MODEL_NAME", "fraud_detector_unreleased")  # no champion, no lineage
    isvc = render_serving_manifests(get_settings())[-1]
    validate(isvc)
    assert "transformer" not in isvc["spec"]


def _rollout(hook, monkeypatch, *, passes: list[bool]):
    """A rollout manager on ``hook`` whose analyses pass or fail in the order of ``passes``."""
    from mlops_provider.serving import rollout
    from mlops_provider.serving.analysis import AnalysisConfig

    verdicts = iter(passes)

    def analysis(*args, **kwargs):
        ok = next(verdicts)
        return {"passed": ok, "checks": [{"ok": ok}], "reason": "Passed" if ok else "AnalysisFailed", "message": "m"}

    monkeypatch.setattr(rollout, "run_analysis", analysis)
    return rollout.KServeRolloutManager(
        hook, model_name="fraud_detector", analysis=AnalysisConfig(), progress_deadline=60
    )


def _controller():
    from tests.fake_k8s.kserve import KServeController

    return KServeController(url_for=lambda uri: f"http://{abs(hash(uri))}.example", is_broken=lambda uri: False)


def _existing(hook, mode="Serverless"):
    body = _render(deployment_mode=mode)
    hook.create_inference_service(body)


@pytest.mark.parametrize(
    ("mode", "passes", "expected_patches"),
    [
        # canary at 10, step to 30, promote
        ("Serverless", [True, True], [10, 30, None]),
        # canary at 10 fails its analysis: rollback (0 % to the latest revision)
        ("Serverless", [False], [10, 0]),
        # raw mode: rolling update at full traffic, analysis fails: rolling back
        ("RawDeployment", [False], [None, None]),
    ],
)
def test_every_patch_the_rollout_manager_sends_keeps_the_manifest_valid(monkeypatch, mode, passes, expected_patches):
    """The canary, step, promotion and rollback merge patches the manager really sends produce valid objects."""
    from mlops_provider.serving.rollout import ROLLOUT_STATE_ANNOTATION, canary_weights
    from tests.serving_support import InMemoryKServeHook

    hook = InMemoryKServeHook(_controller())
    _existing(hook, mode)
    manager = _rollout(hook, monkeypatch, passes=passes)
    state = manager.start(
        name="fraud-detector",
        version="8",
        storage_uri="s3://models/fraud_detector/8",
        weights=canary_weights(10, 20, 30),
        manifest_options={"feature_service": FEATURE_SERVICE},
    )
    seen = [hook.get_inference_service("fraud-detector")]
    while not state.phase.terminal:
        state = manager.advance(state, manager.check(state))
        seen.append(hook.get_inference_service("fraud-detector"))
    spec_patches = [p for p in hook.patches if "spec" in p]
    assert [p["spec"]["predictor"]["canaryTrafficPercent"] for p in spec_patches] == expected_patches
    for patch in hook.patches:
        assert ROLLOUT_STATE_ANNOTATION in patch["metadata"]["annotations"]
    for obj in seen:
        manifest = {k: v for k, v in obj.items() if k != "status"}
        manifest["metadata"] = {
            k: v for k, v in obj["metadata"].items() if k in ("name", "namespace", "labels", "annotations")
        }
        validate(manifest)
    final = seen[-1]["spec"]["predictor"]["model"]["storageUri"]
    assert final == ("s3://models/fraud_detector/8" if all(passes) else "s3://models/fraud_detector/7")
