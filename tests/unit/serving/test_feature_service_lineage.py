"""The transformer's FeatureService comes from the deployed version's lineage tag (the registry is the record)."""

from __future__ import annotations

import json
from types import SimpleNamespace

from mlops_provider.lineage import FEATURE_SERVICE_TAG


class _Registry:
    """The two registry reads the deploy operator makes; no training-set manifest is reachable."""

    def __init__(self, version_tags: dict[str, str], run_tags: dict[str, str] | None = None) -> None:
        self.version = SimpleNamespace(version="3", tags=version_tags, run_id="run-1" if run_tags is not None else None)
        self._run_tags = run_tags or {}
        self.manifest_reads = 0

    def get_model_version(self, name, version):
        assert str(version) == "3"
        return self.version

    def run_tags(self, run_id):
        return self._run_tags

    def training_set_of_run(self, run_id):
        self.manifest_reads += 1
        return None, {"feature_service": "from_the_manifest_artifact"}


def _operator(registry, **kwargs):
    from mlops_provider.hooks.mlflow import MlflowHook
    from mlops_provider.operators.kserve import ModelDeployOperator

    operator = ModelDeployOperator(task_id="deploy", model_name="m", candidate={}, **kwargs)
    # The real hook's lineage logic over the fake registry calls.
    registry.feature_service_of_version = lambda version: MlflowHook.feature_service_of_version(registry, version)
    operator.__dict__["mlflow_hook"] = registry
    return operator


CANDIDATE = {"version": "3", "storage_uri": "file:///models/m/3"}


def test_the_version_tag_names_the_feature_service_when_no_manifest_is_reachable():
    """The snapshot was deleted and the candidate carries no training-set URI: the tag still knows."""
    registry = _Registry({FEATURE_SERVICE_TAG: "model_features_v2"})
    assert _operator(registry)._feature_service(CANDIDATE) == "model_features_v2"
    assert registry.manifest_reads == 0


def test_the_version_tag_wins_over_a_training_set_argument_and_the_caller_over_both(tmp_path):
    registry = _Registry({FEATURE_SERVICE_TAG: "model_features_v2"})
    stale = {"uri": "file:///gone", "feature_service": "model_features_v1"}
    assert _operator(registry, training_set=stale)._feature_service(CANDIDATE) == "model_features_v2"
    chosen = _operator(registry, training_set=stale, feature_service="explicit_v3")
    assert chosen._feature_service(CANDIDATE) == "explicit_v3"


def test_versions_without_the_tag_fall_back_to_their_run_then_its_manifest(tmp_path):
    assert _operator(_Registry({}, {FEATURE_SERVICE_TAG: "run_tag_v1"}))._feature_service(CANDIDATE) == "run_tag_v1"
    registry = _Registry({}, {})
    assert _operator(registry)._feature_service(CANDIDATE) == "from_the_manifest_artifact"
    assert registry.manifest_reads == 1
    # No registry lineage at all: the manifest beside the candidate's training set.
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    (snapshot / "manifest.json").write_text(json.dumps({"feature_service": "beside_the_data_v1"}))
    bare = _Registry({})
    candidate = {**CANDIDATE, "training_set_uri": (snapshot / "data.parquet").as_uri()}
    assert _operator(bare)._feature_service(candidate) == "beside_the_data_v1"
