from __future__ import annotations

from pathlib import Path

import pytest

from mlops_provider.settings import MlopsConfigError, get_settings


def test_defaults_are_local(monkeypatch, repo_root):
    monkeypatch.delenv("AIRFLOW__MLOPS__DATA_ROOT", raising=False)
    settings = get_settings()
    assert settings.training_backend == "local"
    assert settings.serving_backend == "local"
    assert settings.project_root == repo_root
    assert settings.data_root == (settings.local_root / "data").as_uri()
    assert settings.mlflow_local_tracking_uri.startswith("sqlite:///")
    assert settings.mlflow_local_tracking_uri.endswith("/mlflow/mlflow.db")
    assert settings.feast_repo_path == repo_root / "include" / "feature_repo"
    assert settings.serving_python == str(repo_root / ".venv-serving" / "bin" / "python")
    assert settings.zone_uri("raw", "transactions") == settings.data_root + "/raw/transactions"


def test_environment_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW__MLOPS__DATA_ROOT", "s3://bucket/prefix")
    monkeypatch.setenv("AIRFLOW__MLOPS__TRAINING_BACKEND", "kubernetes")
    monkeypatch.setenv("AIRFLOW__MLOPS__SERVING_BACKEND", "kserve")
    monkeypatch.setenv("AIRFLOW__MLOPS__LOCAL_SERVING_PORT", "9999")
    monkeypatch.setenv("AIRFLOW__MLOPS__LOCAL_ROOT", str(tmp_path))
    settings = get_settings()
    assert settings.data_root == "s3://bucket/prefix"
    assert settings.zone_uri("validated", "t") == "s3://bucket/prefix/validated/t"
    assert settings.training_backend == "kubernetes"
    assert settings.serving_backend == "kserve"
    assert settings.local_serving_port == 9999
    assert settings.local_root == Path(tmp_path).resolve()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("TRAINING_BACKEND", "gpu", "training_backend='gpu' is not one of local, kubernetes, vertex"),
        ("SERVING_BACKEND", "seldon", "serving_backend='seldon' is not one of local, kserve"),
        ("LOCAL_SERVING_PORT", "http", "local_serving_port='http' is not an integer"),
    ],
)
def test_bad_values_fail_with_the_fix(monkeypatch, key, value, message):
    monkeypatch.setenv(f"AIRFLOW__MLOPS__{key}", value)
    with pytest.raises(MlopsConfigError, match=message):
        get_settings()
