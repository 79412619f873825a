"""FeastHook configuration: env expansion, local defaults, connection overrides, no secrets on disk."""

from __future__ import annotations

import json

import yaml

from mlops_provider.hooks.feast import FeastHook, expand_env, redact


def test_expand_env_with_defaults():
    env = {"A": "1", "EMPTY": ""}
    assert expand_env("${A}-${B:-two}-${EMPTY:-three}-${C}", env) == "1-two-three-${C}"


def test_redact_masks_secrets_in_keys_and_urls():
    config = {
        "online_store": {"type": "redis", "connection_string": "redis:6379,password=hunter2"},
        "registry": {"path": "postgresql://feast:hunter2@db:5432/feast"},
        "offline_store": {"type": "file", "aws_secret_access_key": "hunter2"},
    }
    assert "hunter2" not in json.dumps(redact(config))


def test_local_defaults_without_connection(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__MLOPS__LOCAL_ROOT", str(tmp_path))
    monkeypatch.delenv("AIRFLOW_CONN_FEAST_DEFAULT", raising=False)
    hook = FeastHook()
    config = hook.resolved_config
    assert config["project"] == "fraud"
    assert config["registry"]["path"] == str(tmp_path / "feast" / "registry.db")
    assert config["online_store"] == {"type": "sqlite", "path": str(tmp_path / "feast" / "online_store.db")}
    repo_config = hook.get_repo_config()
    assert repo_config.offline_store.type == "mlops_provider.features.offline_store.AsOfFileOfflineStore"
    written = yaml.safe_load(hook.write_resolved_config().read_text())
    assert written["offline_store"] == {"type": "file"}  # other clients use Feast's own store on the same files


def test_env_overrides_file_values(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__MLOPS__LOCAL_ROOT", str(tmp_path))
    monkeypatch.setenv("FEAST_PROJECT", "fraud_staging")
    assert FeastHook().resolved_config["project"] == "fraud_staging"


def test_connection_selects_stores_and_keeps_secrets_off_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__MLOPS__LOCAL_ROOT", str(tmp_path))
    connection = {
        "conn_type": "feast",
        "host": "pg.internal",
        "port": 5433,
        "login": "feast",
        "password": "s3cr3t",
        "schema": "features",
        "extra": {
            "project": "fraud_prod",
            "registry": "s3://bucket/feast/registry.db",
            "online_store": {"type": "postgres"},
        },
    }
    monkeypatch.setenv("AIRFLOW_CONN_FEAST_PROD", json.dumps(connection))
    hook = FeastHook(feast_conn_id="feast_prod")
    config = hook.resolved_config
    assert config["project"] == "fraud_prod"
    assert config["registry"] == {"registry_type": "file", "path": "s3://bucket/feast/registry.db"}
    assert config["online_store"] == {
        "type": "postgres",
        "host": "pg.internal",
        "port": 5433,
        "database": "features",
        "user": "feast",
        "password": "s3cr3t",
    }
    text = hook.write_resolved_config(tmp_path / "out.yaml").read_text()
    assert "s3cr3t" not in text and "pg.internal" in text


def test_redis_connection_string_from_connection(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__MLOPS__LOCAL_ROOT", str(tmp_path))
    connection = {"conn_type": "feast", "host": "redis", "password": "pw", "extra": {"online_store": {"type": "redis"}}}
    monkeypatch.setenv("AIRFLOW_CONN_FEAST_REDIS", json.dumps(connection))
    online = FeastHook(feast_conn_id="feast_redis").resolved_config["online_store"]
    assert online == {"type": "redis", "connection_string": "redis:6379,password=pw"}


def test_test_connection_on_local_stores(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__MLOPS__LOCAL_ROOT", str(tmp_path))
    ok, message = FeastHook().test_connection()
    assert ok and "Feast project fraud" in message


def test_each_secret_gets_its_own_placeholder():
    from mlops_provider.hooks.feast import secret_environment

    config = {
        "registry": {"path": "postgresql://feast:reg-pw@db:5432/feast"},
        "online_store": {"type": "postgres", "user": "feast", "password": "online-pw"},  # redaction-test
        "offline_store": {
            "type": "postgres",
            "password": "offline-pw",  # redaction-test
            "aws_secret_access_key": "aws-key",  # redaction-test
        },
        "batch_engine": {"type": "x", "connection_string": "redis:6379,password=redis-pw"},  # redaction-test
    }
    redacted = redact(config)
    text = json.dumps(redacted)
    for secret in ("reg-pw", "online-pw", "offline-pw", "aws-key", "redis-pw"):  # redaction-test
        assert secret not in text
    assert redacted["registry"]["path"] == "postgresql://feast:${FEAST_REGISTRY_PASSWORD}@db:5432/feast"
    assert redacted["online_store"]["password"] == "${FEAST_ONLINE_STORE_PASSWORD}"
    assert redacted["offline_store"]["password"] == "${FEAST_OFFLINE_STORE_PASSWORD}"
    aws_placeholder = "${FEAST_OFFLINE_STORE_AWS_SECRET_ACCESS_KEY}"  # redaction-test
    aws_secret = redacted["offline_store"]["aws_secret_access_key"]  # redaction-test
    assert aws_secret == aws_placeholder
    assert redacted["batch_engine"]["connection_string"] == "redis:6379,password=${FEAST_BATCH_ENGINE_PASSWORD}"
    # The values each placeholder stands for, to fill a Secret or the environment of a Feast client.
    assert secret_environment(config) == {
        "FEAST_REGISTRY_PASSWORD": "reg-pw",  # redaction-test
        "FEAST_ONLINE_STORE_PASSWORD": "online-pw",  # redaction-test
        "FEAST_OFFLINE_STORE_PASSWORD": "offline-pw",  # redaction-test
        "FEAST_OFFLINE_STORE_AWS_SECRET_ACCESS_KEY": "aws-key",  # redaction-test
        "FEAST_BATCH_ENGINE_PASSWORD": "redis-pw",  # redaction-test
    }
    # Rendering the placeholders back through the environment gives the original configuration.
    assert yaml.safe_load(expand_env(yaml.safe_dump(redacted), secret_environment(config))) == config


def test_written_config_names_each_connection_secret_and_logs_none(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("AIRFLOW__MLOPS__LOCAL_ROOT", str(tmp_path))
    connection = {
        "conn_type": "feast",
        "host": "pg.internal",
        "login": "feast",
        "password": "s3cr3t-online",
        "extra": {
            "online_store": {"type": "postgres"},
            "offline_store": {"type": "postgres", "password": "s3cr3t-offline"},
        },
    }
    monkeypatch.setenv("AIRFLOW_CONN_FEAST_TWO", json.dumps(connection))
    caplog.set_level("DEBUG")
    hook = FeastHook(feast_conn_id="feast_two")
    written = yaml.safe_load(hook.write_resolved_config(tmp_path / "out.yaml").read_text())
    assert written["online_store"]["password"] == "${FEAST_ONLINE_STORE_PASSWORD}"
    assert written["offline_store"]["password"] == "${FEAST_OFFLINE_STORE_PASSWORD}"
    assert "s3cr3t" not in (tmp_path / "out.yaml").read_text() and "s3cr3t" not in caplog.text
