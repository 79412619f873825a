"""The model spec's ``serving.mode`` renders a valid InferenceService in both modes (KServe's CRD schema).

``transformer``: a Feast transformer in front of the predictor. ``fused``: no transformer; the predictor runs
``--component=fused`` and mounts the resolved ``feature_store.yaml`` and the online store's Secret itself.
"""

from __future__ import annotations

import copy

import pytest

from mlops_provider.exceptions import ModelSpecError
from mlops_provider.spec.load import parse_spec
from tests.conftest import REPO_ROOT
from tests.unit.serving.test_manifests import validate
from tests.unit.spec.conftest import SPEC

FEATURE_SERVICE = "refunds_v1"
FEAST_ARGS = [
    "--feast_repo_path=/app/include/feature_repo",
    f"--feature_service={FEATURE_SERVICE}",
    "--feast_config=/etc/feast/feature_store.yaml",
]


def _deploy_options(mode: str | None) -> dict:
    """The deploy task's ``manifest_options`` built from a spec with ``serving.mode: mode``."""
    from mlops_provider.spec.dags import build_dags

    raw = copy.deepcopy(SPEC)
    if mode is not None:
        raw["serving"] = {**raw.get("serving", {}), "mode": mode}
    spec = parse_spec(raw, "include/models/refunds.yaml", REPO_ROOT)
    return build_dags(spec)["refunds__training"].get_task("deploy").manifest_options


@pytest.mark.parametrize("deployment_mode", ["Serverless", "RawDeployment"])
@pytest.mark.parametrize("storage_uri", ["s3://models/refunds/3", "models:/refunds@champion"])
def test_fused_mode_renders_a_predictor_that_looks_its_features_up(deployment_mode, storage_uri):
    from mlops_provider.serving.manifests import render_inference_service

    options = _deploy_options("fused")
    assert options["serving_mode"] == "fused"
    manifest = render_inference_service(
        "refunds", storage_uri, feature_service=FEATURE_SERVICE, deployment_mode=deployment_mode, **options
    )
    validate(manifest)
    assert "transformer" not in manifest["spec"]
    predictor = manifest["spec"]["predictor"]
    model = predictor["model"]
    assert model["args"][-4:] == ["--component=fused", *FEAST_ARGS]
    assert model["volumeMounts"] == [{"name": "feast-config", "mountPath": "/etc/feast", "readOnly": True}]
    assert predictor["volumes"] == [{"name": "feast-config", "configMap": {"name": "feast-config"}}]
    secrets = [ref["secretRef"]["name"] for ref in model["envFrom"]]
    via_server = storage_uri.startswith("models:/")
    assert secrets == (["feast-online-store", "mlflow-credentials"] if via_server else ["feast-online-store"])
    assert (f"--storage_uri={storage_uri}" in model["args"]) == via_server


def test_transformer_mode_is_the_default_and_renders_the_transformer():
    from mlops_provider.serving.manifests import render_inference_service

    options = _deploy_options(None)
    assert options["serving_mode"] == "transformer" and options == _deploy_options("transformer")
    manifest = render_inference_service("refunds", "s3://models/refunds/3", feature_service=FEATURE_SERVICE, **options)
    validate(manifest)
    model = manifest["spec"]["predictor"]["model"]
    assert "--component=fused" not in model.get("args", []) and "volumeMounts" not in model
    container = manifest["spec"]["transformer"]["containers"][0]
    assert container["args"][0] == "--component=transformer"
    assert set(FEAST_ARGS) <= set(container["args"])


def test_a_model_without_feature_lookup_ignores_the_mode():
    """``transformer=False`` (feature rows only): neither a transformer nor a fused predictor."""
    from mlops_provider.serving.manifests import render_inference_service

    manifest = render_inference_service("refunds", "s3://models/refunds/3", transformer=False, serving_mode="fused")
    validate(manifest)
    assert "transformer" not in manifest["spec"] and "volumeMounts" not in manifest["spec"]["predictor"]["model"]


def test_an_unknown_mode_is_named_in_the_error():
    from mlops_provider.serving.manifests import render_inference_service

    raw = copy.deepcopy(SPEC)
    raw["serving"] = {**raw.get("serving", {}), "mode": "sidecar"}
    with pytest.raises(ModelSpecError, match="serving.mode: expected one of transformer, fused, got 'sidecar'"):
        parse_spec(raw, "include/models/refunds.yaml", REPO_ROOT)
    with pytest.raises(ValueError, match="serving_mode='sidecar' is not one of"):
        render_inference_service("refunds", "s3://m/1", feature_service=FEATURE_SERVICE, serving_mode="sidecar")
