"""The cluster's shadow: the Istio VirtualService (mirror) and DestinationRule validate against Istio's CRDs.

The schemas are the official CRDs in ``/work/shared/schemas/istio`` (the ``v1`` version, the stored one); strict
field validation is :func:`tests.unit.serving.test_manifests.unknown_fields`, as for the InferenceServices.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
import yaml

from tests.unit.serving.test_manifests import DNS_1035, unknown_fields, validate

ISTIO_SCHEMAS = Path("/work/shared/schemas/istio")
CRD_FILES = {
    "VirtualService": "networking.istio.io_virtualservices.yaml",
    "DestinationRule": "networking.istio.io_destinationrules.yaml",
}


@cache
def istio_schema(kind: str, version: str = "v1") -> dict:
    crd = yaml.load((ISTIO_SCHEMAS / CRD_FILES[kind]).read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    assert served["served"] and served["storage"]
    return served["schema"]["openAPIV3Schema"]


def validate_istio(manifest: dict) -> None:
    import jsonschema

    assert manifest["apiVersion"] == "networking.istio.io/v1"
    schema = istio_schema(manifest["kind"])
    jsonschema.validate(manifest, schema, cls=jsonschema.Draft7Validator)
    # Istio's CRDs leave apiVersion/kind/metadata to the API server: strict validation starts at spec.
    assert set(manifest) == {"apiVersion", "kind", "metadata", "spec"}
    assert unknown_fields(manifest["spec"], schema["properties"]["spec"], ".spec") == []
    assert DNS_1035.match(manifest["metadata"]["name"])


@pytest.mark.parametrize("percent", [100.0, 12.5, 0.0])
def test_shadow_objects_validate_and_mirror_to_the_challenger_predictor(percent):
    from mlops_provider.serving.manifests import render_istio_shadow

    service, rule = render_istio_shadow("fraud_detector", namespace="models", mirror_percent=percent)
    for manifest in (service, rule):
        validate_istio(manifest)
    champion = "fraud-detector-predictor.models.svc.cluster.local"
    challenger = "fraud-detector-challenger-predictor.models.svc.cluster.local"
    (http,) = service["spec"]["http"]
    assert service["spec"]["hosts"] == [champion]
    assert http["route"] == [{"destination": {"host": champion, "port": {"number": 80}}, "weight": 100}]
    assert http["mirror"] == {"host": challenger, "port": {"number": 80}}
    assert http["mirrorPercentage"] == {"value": percent}
    assert rule["spec"]["host"] == challenger
    assert rule["spec"]["trafficPolicy"]["connectionPool"]["http"]["http1MaxPendingRequests"] > 0


def test_a_misspelt_field_fails_the_strict_validation():
    from mlops_provider.serving.manifests import render_istio_shadow

    service, _ = render_istio_shadow("fraud_detector", namespace="models")
    service["spec"]["http"][0]["mirrorPercent"] = {"value": 10}  # the deprecated integer field, wrong shape
    with pytest.raises(Exception, match="is not of type 'integer'"):
        validate_istio(service)
    service["spec"]["http"][0].pop("mirrorPercent")
    service["spec"]["http"][0]["mirror_percentage"] = {"value": 10}
    with pytest.raises(AssertionError):
        validate_istio(service)


def test_bad_mirror_percent_names_the_value():
    from mlops_provider.serving.manifests import render_istio_shadow
    from mlops_provider.settings import MlopsConfigError

    with pytest.raises(MlopsConfigError, match="mirror_percent must be between 0 and 100, got 150"):
        render_istio_shadow("fraud_detector", namespace="models", mirror_percent=150)


def test_make_render_writes_the_challenger_and_the_istio_shadow(tmp_path):
    from include.render import render_all, write_manifests

    objects = render_all()
    paths = write_manifests(objects, tmp_path)
    by_kind = {}
    for path in paths:
        manifest = yaml.safe_load(path.read_text())
        by_kind.setdefault(manifest["kind"], []).append(manifest)
    (service,) = by_kind["VirtualService"]
    (rule,) = by_kind["DestinationRule"]
    validate_istio(service)
    validate_istio(rule)
    services = {isvc["metadata"]["name"]: isvc for isvc in by_kind["InferenceService"]}
    champion_name = service["metadata"]["name"].removesuffix("-shadow")
    challenger_name = f"{champion_name}-challenger"
    assert set(services) == {champion_name, challenger_name}
    validate(services[challenger_name])
    # models:/ URIs are resolved by the server through MLflow: the challenger alias, whatever version holds it.
    args = services[challenger_name]["spec"]["predictor"]["model"]["args"]
    assert any(arg.startswith("--storage_uri=models:/") and arg.endswith("@challenger") for arg in args)
    assert "transformer" not in services[challenger_name]["spec"]  # mirrored requests already carry features
    namespace = service["metadata"]["namespace"]
    assert service["spec"]["http"][0]["mirror"]["host"] == f"{challenger_name}-predictor.{namespace}.svc.cluster.local"
    assert rule["spec"]["host"] == service["spec"]["http"][0]["mirror"]["host"]
