"""Launching for a cluster with a path on this machine fails before anything is submitted; ``make render`` warns."""

from __future__ import annotations

import pytest

from mlops_provider.reachability import (
    DATA_ROOT_SETTING,
    is_machine_local,
    machine_local_uris,
    require_cluster_reachable,
)
from mlops_provider.settings import MlopsConfigError, reset_settings


@pytest.fixture
def separate_cluster(monkeypatch):
    """A cluster that does not mount this machine's paths (the default outside the tests)."""
    monkeypatch.setenv("AIRFLOW__MLOPS__CLUSTER_SHARES_LOCAL_PATHS", "False")
    reset_settings()
    yield
    reset_settings()


@pytest.mark.parametrize(
    ("uri", "local"),
    [
        ("file:///data/training_sets/x/data.parquet", True),
        ("/data/training_sets/x/data.parquet", True),
        ("training_sets/x/data.parquet", True),
        ("s3://bucket/mlops/training_sets/x/data.parquet", False),
        ("gs://bucket/x", False),
        ("models:/fraud@champion", False),
        ("mlflow-artifacts:/1/abc/artifacts/model", False),
        ("pvc://models/x", False),
        ("/mnt/models", False),
    ],
)
def test_machine_local_uris_are_files_and_bare_paths(uri, local):
    assert is_machine_local(uri) is local


def test_a_local_uri_fails_naming_the_setting_to_change(separate_cluster):
    with pytest.raises(MlopsConfigError) as raised:
        require_cluster_reachable(
            "file:///srv/data/x.parquet", what="training set", reader="The training pod of m", setting=DATA_ROOT_SETTING
        )
    message = str(raised.value)
    assert "The training pod of m cannot read the training set at file:///srv/data/x.parquet" in message
    assert "AIRFLOW__MLOPS__DATA_ROOT" in message and "cluster_shares_local_paths" in message
    require_cluster_reachable("s3://bucket/x.parquet", what="training set", reader="pod", setting=DATA_ROOT_SETTING)


def test_a_cluster_that_mounts_the_paths_accepts_them(monkeypatch):
    monkeypatch.setenv("AIRFLOW__MLOPS__CLUSTER_SHARES_LOCAL_PATHS", "True")
    reset_settings()
    try:
        require_cluster_reachable("file:///srv/x.parquet", what="training set", reader="pod", setting=DATA_ROOT_SETTING)
    finally:
        reset_settings()


def test_rendered_objects_report_their_machine_local_uris():
    pod = {
        "kind": "Pod",
        "spec": {"containers": [{"args": ["--training-set-uri", "file:///d/ts.parquet", "--model-name", "m"]}]},
    }
    isvc = {
        "kind": "InferenceService",
        "spec": {
            "predictor": {"model": {"storageUri": "/home/me/mlruns/1/model", "args": ["--storage_uri=/mnt/models"]}},
            "transformer": {"storageUris": [{"uri": "gs://b/model", "mountPath": "/mnt/models"}]},
        },
    }
    assert machine_local_uris(pod) == ["file:///d/ts.parquet"]
    assert machine_local_uris(isvc) == ["/home/me/mlruns/1/model"]


def test_make_render_warns_for_each_object_reading_a_local_path(separate_cluster, monkeypatch, tmp_path):
    from include.render import reachability_warnings, render_all

    monkeypatch.setenv("AIRFLOW__MLOPS__DATA_ROOT", (tmp_path / "data").as_uri())
    monkeypatch.setenv("AIRFLOW__MLOPS__MLFLOW_CONN_ID", "no_such_mlflow_conn")
    reset_settings()
    warnings = reachability_warnings(render_all())
    # The training pod and the dask backend's DaskJob both hand their workload the training set.
    assert [warning.split("/")[0] for warning in warnings] == ["Pod", "DaskJob"]
    for warning in warnings:
        assert f"{(tmp_path / 'data').as_uri()}/training_sets/" in warning and "s3:// or gs://" in warning
    monkeypatch.setenv("AIRFLOW__MLOPS__DATA_ROOT", "s3://bucket/mlops")
    reset_settings()
    assert reachability_warnings(render_all()) == []
