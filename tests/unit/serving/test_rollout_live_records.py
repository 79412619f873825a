"""Rollout records keep one rollout id across a resumed rollout; the deploy operator's live-analysis options."""

from __future__ import annotations

import json

import pytest

from mlops_provider.hooks.prometheus import PrometheusHook, PrometheusQueryError
from mlops_provider.serving.records import read_rollouts
from mlops_provider.serving.rollout import ROLLOUT_STATE_ANNOTATION, KServeRolloutManager, RolloutPhase
from tests.loopback import free_port
from tests.serving_support import InMemoryKServeHook

NAME = "model-a"
OLD, NEW = "s3://models/model-a/1", "s3://models/model-a/2"


@pytest.fixture
def cluster(monkeypatch):
    """An in-memory InferenceService serving version 1 under the fake KServe controller; probes scripted to fail."""
    from mlops_provider.serving import rollout
    from mlops_provider.serving.manifests import render_inference_service
    from tests.fake_k8s.kserve import KServeController

    monkeypatch.setattr(
        rollout,
        "run_analysis",
        lambda *a, **k: {
            "passed": False,
            "checks": [{"ok": False}],
            "reason": "AnalysisFailed",
            "message": "probe 500",
        },
    )
    hook = InMemoryKServeHook(KServeController(url_for=lambda uri: "http://x.test", is_broken=lambda uri: False))
    hook.create_inference_service(
        render_inference_service("model-a", OLD, name=NAME, namespace="models", model_version="1", transformer=False)
    )
    return hook


def test_a_resumed_rollout_writes_to_the_same_rollout_id(cluster, tmp_path):
    from mlops_provider.serving.analysis import AnalysisConfig

    clock = iter(range(1_000, 2_000, 7))
    manager = KServeRolloutManager(
        cluster,
        model_name="model-a",
        analysis=AnalysisConfig(),
        progress_deadline=600,
        data_root=str(tmp_path),
        clock=lambda: float(next(clock)),
    )
    options = {"transformer": False}
    state = manager.start(name=NAME, version="2", storage_uri=NEW, weights=[10], manifest_options=options)
    started_at = state.started_at
    assert started_at and json.loads(cluster.get_inference_service(NAME)["metadata"]["annotations"][
        ROLLOUT_STATE_ANNOTATION
    ])["started_at"] == started_at  # fmt: skip

    # A retried task (a new manager, later clock) resumes from the annotation: same start, same rollout.
    resumed = KServeRolloutManager(
        cluster, model_name="model-a", analysis=AnalysisConfig(), data_root=str(tmp_path), clock=lambda: 5_000.0
    )
    state = resumed.start(name=NAME, version="2", storage_uri=NEW, weights=[10], manifest_options=options)
    assert state.started_at == started_at and state.phase is RolloutPhase.CANARY
    state = resumed.advance(state, resumed.check(state))  # the probes fail: rollback
    state = resumed.advance(state, resumed.check(state))
    assert state.phase is RolloutPhase.ROLLED_BACK

    [rollout] = read_rollouts("model-a", data_root=str(tmp_path))
    events = {event["kind"]: event["details"] for event in rollout["events"]}
    assert rollout["started_at"] == started_at
    assert events["analysis"]["source"] == "probes" and events["analysis"]["verdict"] == "fail"
    assert events["analysis"]["metrics"][0]["name"] == "probes" and events["analysis"]["weight"] == 10
    assert events["result"] == {"outcome": "rolled_back", "message": "probe 500"}


def test_deploy_operator_takes_live_analysis_options():
    from mlops_provider.exceptions import MlopsError
    from mlops_provider.operators.kserve import ModelDeployOperator

    assert "prometheus_conn_id" in ModelDeployOperator.template_fields
    operator = ModelDeployOperator(
        task_id="deploy",
        model_name="m",
        candidate={},
        live_analysis={"min_requests": 25},
        prometheus_conn_id="cluster_prometheus",
    )
    config = operator._live_analysis_config()
    assert config is not None and config.min_requests == 25 and config.prometheus_conn_id == "cluster_prometheus"
    assert ModelDeployOperator(task_id="d", model_name="m", candidate={})._live_analysis_config() is None
    bad = ModelDeployOperator(task_id="d", model_name="m", candidate={}, live_analysis={"min_request": 1})
    with pytest.raises(MlopsError, match="invalid live_analysis .*Unknown live_analysis option"):
        bad._live_analysis_config()


def test_prometheus_hook_urls_auth_and_errors(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_PROMETHEUS_DEFAULT", raising=False)
    assert PrometheusHook().base_url == PrometheusHook.local_url == "http://127.0.0.1:9090"
    connection = {
        "conn_type": "prometheus",
        "host": "prom.example.com",
        "schema": "https",
        "port": 8443,
        "login": "reader",
        "password": "s3cret",
        "extra": {"path_prefix": "/prometheus/"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_PROM_TEST", json.dumps(connection))
    hook = PrometheusHook("prom_test")
    assert hook.base_url == "https://prom.example.com:8443/prometheus"
    assert hook._headers()["Authorization"].startswith("Basic ")
    monkeypatch.setenv(
        "AIRFLOW_CONN_PROM_DOWN", json.dumps({"conn_type": "prometheus", "host": f"127.0.0.1:{free_port()}"})
    )
    down = PrometheusHook("prom_down", timeout=2)
    ok, message = down.test_connection()
    assert not ok and "unreachable" in message
    with pytest.raises(PrometheusQueryError, match="prom_down"):
        down.query("up")
