"""The KServe rollout's shadow step on the cluster: a challenger InferenceService, an Istio mirror, a live verdict.

Real pieces: the rollout manager and the real ``KServeHook`` against the fake Kubernetes API server with the KServe
controller and Istio's admission (every VirtualService and DestinationRule written is validated against Istio's
CRDs); three real model servers (stable version 1; version 2, the same model saved again; version 3, worse only on
users' traffic); a real Prometheus scraping them, which the manager queries through the ``prometheus`` connection;
the prediction log both versions write (the shadow's agreement, joined on request ids).

The users' thread plays Istio and Knative from what is stored in the cluster: each request goes to the stable
InferenceService's URL, or to the canary's revision for its traffic share, and while the VirtualService exists,
``mirrorPercentage`` % of them are copied, with the same request id, to the InferenceService its ``mirror`` host
names.
"""

from __future__ import annotations

import dataclasses
import time
import uuid

import pytest

from mlops_provider.lineage import MODEL_VERSION_ANNOTATION
from mlops_provider.serving.analysis import AnalysisConfig
from mlops_provider.serving.live_analysis import ERROR_RATE, P99_LATENCY, PREDICTION_DIVERGENCE, LiveAnalysisConfig
from mlops_provider.serving.manifests import challenger_name, render_inference_service
from mlops_provider.serving.records import read_rollouts
from mlops_provider.serving.rollout import KServeRolloutManager, RolloutPhase, RolloutStrategy
from mlops_provider.serving.status import GROUP, ISTIO_GROUP, ISTIO_VERSION, PLURAL, VERSION
from tests.fake_k8s.istio import admit_istio_objects
from tests.fake_k8s.kserve import KServeController
from tests.fixtures.prometheus_server import start_prometheus
from tests.loopback import free_port
from tests.serving_support import (
    BackgroundLoop,
    feature_columns,
    post_json,
    save_mlflow_model,
    start_server,
    train_live_only_worse_canary,
    wait_server,
)

pytestmark = pytest.mark.integration

MODEL = "shadow_rollout_model"
NAMESPACE = "shadow-rollout"
ISVC = "shadow-rollout-model"
CHALLENGER = challenger_name(ISVC)
MIRROR = f"{ISVC}-shadow"


@pytest.fixture(scope="module")
def shadow_servers(serving_models, tmp_path_factory):
    """Stable (1), an equal candidate (2) and a live-only-worse candidate (3), scraped by one Prometheus."""
    root = tmp_path_factory.mktemp("shadow-rollout")
    stable = serving_models["v1"]
    uris = {
        "1": stable.uri,
        "2": save_mlflow_model(stable.booster, root / "equal"),
        "3": save_mlflow_model(train_live_only_worse_canary(stable.booster), root / "worse"),
    }
    log_uri = (root / "predictions" / MODEL).as_uri()
    servers, prometheus = {}, None
    try:
        for version, uri in uris.items():
            servers[version] = start_server(
                [f"--storage_uri={uri}", f"--model_version={version}", "--access_log=false",
                 f"--prediction_log_uri={log_uri}", "--prediction_log_flush_seconds=0.3"],
                root / f"server-{version}.log",
                MODEL,
            )  # fmt: skip
        for server in servers.values():
            wait_server(server)
        prometheus = start_prometheus([s.url for s in servers.values()], root / "prometheus")
        prometheus.wait_scraped(f'mlops_requests_total{{model_name="{MODEL}"}}', count=3)
        yield {"servers": servers, "uris": uris, "prometheus": prometheus, "log_uri": log_uri, "root": root}
    finally:
        if prometheus is not None:
            prometheus.stop()
        for server in servers.values():
            server.stop()


@pytest.fixture
def cluster(shadow_servers, fake_k8s, monkeypatch, tmp_path):
    from mlops_provider.hooks.kserve import KServeHook

    monkeypatch.setenv("AIRFLOW_CONN_SHADOW_PROMETHEUS", shadow_servers["prometheus"].connection_json())
    urls = {uri: shadow_servers["servers"][version].url for version, uri in shadow_servers["uris"].items()}
    dead = f"http://127.0.0.1:{free_port()}"
    fake_k8s.add_controller(
        "inferenceservices", KServeController(url_for=lambda uri: urls.get(uri, dead), is_broken=lambda uri: False)
    )
    admissions = admit_istio_objects(fake_k8s)
    hook = KServeHook(kubernetes_conn_id=fake_k8s.conn_id, namespace=NAMESPACE)
    hook.create_inference_service(
        render_inference_service(
            MODEL, shadow_servers["uris"]["1"], name=ISVC, namespace=NAMESPACE, model_version="1", transformer=False
        )
    )
    return {"hook": hook, "k8s": fake_k8s, "admissions": admissions, "data_root": str(tmp_path / "data"),
            **shadow_servers}  # fmt: skip


def manager_for(cluster, shadow_percent: float | None = 100, **live_options) -> KServeRolloutManager:
    # Latency is judged too, with a ratio a loaded shared machine cannot trip; its own tests pin the threshold.
    # 120 requests a version: the Jensen-Shannon divergence of two samples of one model then stays near 0.03 (with
    # 30 it is near 0.1, the threshold, from sampling alone).
    metrics = (ERROR_RATE, dataclasses.replace(P99_LATENCY, threshold=20.0), PREDICTION_DIVERGENCE)
    return KServeRolloutManager(
        cluster["hook"],
        model_name=MODEL,
        analysis=AnalysisConfig(interval=0.5, iterations=2, failure_threshold=1, requests=5),
        progress_deadline=120,
        live_analysis=LiveAnalysisConfig(
            min_requests=120,
            metrics=metrics,
            prometheus_conn_id="shadow_prometheus",
            prediction_log_uri=cluster["log_uri"],
            **live_options,
        ),  # fmt: skip
        live_source="prometheus",
        data_root=cluster["data_root"],
        shadow_percent=shadow_percent,
    )


class Users(BackgroundLoop):
    """Users' requests routed as Istio and Knative would from the objects in the cluster; what they saw, recorded."""

    def __init__(self, k8s) -> None:
        super().__init__()
        self.k8s = k8s
        self.seen: list[dict] = []
        self.prefix = uuid.uuid4().hex[:8]

    def _isvc(self, name: str) -> dict:
        return self.k8s.get_object(GROUP, VERSION, NAMESPACE, PLURAL, name) or {}

    def _run(self) -> None:
        import numpy as np

        rng = np.random.default_rng(11)
        i = 0
        while not self.stop.is_set():
            row = rng.normal(size=len(feature_columns())).astype(np.float32)
            status = self._isvc(ISVC).get("status") or {}
            traffic = ((status.get("components") or {}).get("predictor") or {}).get("traffic") or []
            url = status.get("url")
            if len(traffic) == 2:  # Knative's split: latest (the canary) for its percent
                latest = next(t for t in traffic if t.get("latestRevision"))
                prev = next(t for t in traffic if not t.get("latestRevision"))
                url = latest["url"] if i % 100 < latest["percent"] else prev["url"]
            services = self.k8s.objects(ISTIO_GROUP, ISTIO_VERSION, NAMESPACE, "virtualservices")
            rules = self.k8s.objects(ISTIO_GROUP, ISTIO_VERSION, NAMESPACE, "destinationrules")
            mirror_url = None
            for service in services:
                http = service["spec"]["http"][0]
                host = http["mirror"]["host"]  # <isvc>-predictor.<namespace>.svc.cluster.local
                name, namespace = host.split(".")[0].removesuffix("-predictor"), host.split(".")[1]
                if namespace == NAMESPACE and i % 100 < http["mirrorPercentage"]["value"]:
                    mirror_url = (self._isvc(name).get("status") or {}).get("url")
            body = {
                "id": f"{self.prefix}-{i}",
                "inputs": [{"name": "input-0", "shape": [1, len(row)], "datatype": "FP32", "data": row.tolist()}],
            }
            if url:
                post_json(f"{url}/v2/models/{MODEL}/infer", body)
            if mirror_url:  # Istio never waits for nor returns the mirror's answer
                post_json(f"{mirror_url}/v2/models/{MODEL}/infer", body)
            self.seen.append(
                {"split": len(traffic) == 2, "mirrored": bool(mirror_url), "services": len(services),
                 "rules": len(rules)}
            )  # fmt: skip
            i += 1
            time.sleep(0.01)


def shadow_objects(k8s) -> tuple[list[dict], list[dict], dict | None]:
    return (
        k8s.objects(ISTIO_GROUP, ISTIO_VERSION, NAMESPACE, "virtualservices"),
        k8s.objects(ISTIO_GROUP, ISTIO_VERSION, NAMESPACE, "destinationrules"),
        k8s.get_object(GROUP, VERSION, NAMESPACE, PLURAL, CHALLENGER),
    )


def drive(manager: KServeRolloutManager, state):
    while not state.phase.terminal:
        state = manager.advance(state, manager.wait(state, poll_interval=0.2))
    return state


class WorkerKilled(BaseException):
    """The task process dying at a fault point: nothing after it runs, no cleanup (not an Exception)."""


def kill_at(monkeypatch, point: str) -> None:
    def fault_point(name: str) -> None:
        if name == point:
            monkeypatch.setattr("mlops_provider.serving.rollout.fault_point", lambda _: None)  # fires once
            raise WorkerKilled(name)

    monkeypatch.setattr("mlops_provider.serving.rollout.fault_point", fault_point)


def test_shadow_then_canary_then_full_applies_the_mirror_then_removes_it(cluster):
    manager = manager_for(cluster)
    state = manager.start(
        name=ISVC, version="2", storage_uri=cluster["uris"]["2"], weights=[50], manifest_options={"transformer": False}
    )
    assert state.phase is RolloutPhase.SHADOW and state.strategy is RolloutStrategy.SHADOW
    stable_generation = cluster["hook"].get_inference_service(ISVC)["metadata"]["generation"]
    with Users(cluster["k8s"]) as users:
        state = drive(manager, state)

    assert state.phase is RolloutPhase.PROMOTED and state.verified, state.message
    assert [a.get("mode", "canary") for a in state.analyses] == ["shadow", "canary"]
    assert all(a["passed"] for a in state.analyses)
    # The mirror existed (and users' copies reached the challenger), never together with the canary's split.
    assert any(s["mirrored"] for s in users.seen) and any(s["split"] for s in users.seen)
    assert not any(s["mirrored"] and s["split"] for s in users.seen)
    assert max(s["services"] for s in users.seen) == 1 and max(s["rules"] for s in users.seen) == 1
    assert cluster["admissions"]["virtualservices"].admitted >= 1
    assert cluster["admissions"]["destinationrules"].admitted >= 1
    # The documented final state: no VirtualService, no DestinationRule, no challenger.
    assert shadow_objects(cluster["k8s"]) == ([], [], None)
    isvc = cluster["hook"].get_inference_service(ISVC)
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == cluster["uris"]["2"]
    assert isvc["metadata"]["generation"] > stable_generation

    [rollout] = read_rollouts(MODEL, data_root=cluster["data_root"])
    kinds = [event["kind"] for event in rollout["events"]]
    assert "shadow" in kinds and kinds[-1] == "result"
    shadow = next(e["details"] for e in rollout["events"] if e["kind"] == "shadow")
    assert shadow["verdict"] == "pass" and shadow["source"] == "prometheus"
    agreement = next(m for m in shadow["metrics"] if m["name"] == "agreement")
    assert agreement["value"] == 1.0 and agreement["stable"] >= 1  # joined on the mirrored requests' ids


def test_a_failing_shadow_removes_the_mirror_and_never_touches_the_stable_service(cluster):
    manager = manager_for(cluster)
    before = cluster["hook"].get_inference_service(ISVC)
    state = manager.start(
        name=ISVC, version="3", storage_uri=cluster["uris"]["3"], weights=[50], manifest_options={"transformer": False}
    )
    with Users(cluster["k8s"]) as users:
        state = drive(manager, state)

    assert state.phase is RolloutPhase.ROLLED_BACK and state.reason == "ShadowAnalysisFailed", state.message
    assert all(check["ok"] for check in state.analysis["checks"])  # its probes passed
    live = state.analysis["live"]
    assert live["verdict"] == "fail"
    failed = {m["name"] for m in live["metrics"] if m["passed"] is False}
    assert failed & {"agreement", "prediction_divergence"}, live["metrics"]
    assert any(s["mirrored"] for s in users.seen) and not any(s["split"] for s in users.seen)
    assert shadow_objects(cluster["k8s"]) == ([], [], None)
    after = cluster["hook"].get_inference_service(ISVC)
    assert after["metadata"]["generation"] == before["metadata"]["generation"]  # users never left stable
    assert after["spec"]["predictor"] == before["spec"]["predictor"]
    [rollout] = read_rollouts(MODEL, data_root=cluster["data_root"])
    assert rollout["events"][-1]["details"]["outcome"] == "rolled_back"


def test_a_worker_killed_mid_shadow_resumes_with_one_mirror_and_ends_with_none(cluster, monkeypatch):
    first = manager_for(cluster)
    state = first.start(
        name=ISVC, version="2", storage_uri=cluster["uris"]["2"], weights=[50], manifest_options={"transformer": False}
    )
    kill_at(monkeypatch, "deploy.mid_shadow")
    with pytest.raises(WorkerKilled):
        drive(first, state)
    services, rules, challenger = shadow_objects(cluster["k8s"])
    assert len(services) == 1 and len(rules) == 1 and challenger is not None  # the killed try left its shadow

    retry = manager_for(cluster)
    resumed = retry.start(
        name=ISVC, version="2", storage_uri=cluster["uris"]["2"], weights=[50], manifest_options={"transformer": False}
    )
    assert resumed.phase is RolloutPhase.SHADOW and resumed.started_at == state.started_at  # the same rollout
    again = cluster["k8s"].get_object(GROUP, VERSION, NAMESPACE, PLURAL, CHALLENGER)
    assert again["metadata"]["resourceVersion"] == challenger["metadata"]["resourceVersion"]  # applying: a no-op
    with Users(cluster["k8s"]) as users:
        resumed = drive(retry, resumed)

    assert resumed.phase is RolloutPhase.PROMOTED, resumed.message
    assert any(s["mirrored"] for s in users.seen)
    assert max(s["services"] for s in users.seen) == 1 and max(s["rules"] for s in users.seen) == 1
    assert shadow_objects(cluster["k8s"]) == ([], [], None)
    assert len(read_rollouts(MODEL, data_root=cluster["data_root"])) == 1


def test_on_kill_mid_shadow_removes_the_shadow_and_the_retry_starts_afresh(cluster, monkeypatch):
    manager = manager_for(cluster)
    before = cluster["hook"].get_inference_service(ISVC)
    state = manager.start(
        name=ISVC, version="2", storage_uri=cluster["uris"]["2"], weights=[50], manifest_options={"transformer": False}
    )
    kill_at(monkeypatch, "deploy.mid_shadow")
    with pytest.raises(WorkerKilled):
        drive(manager, state)

    aborted = manager.abort(ISVC)  # the operator's on_kill
    assert aborted.phase is RolloutPhase.ROLLED_BACK and aborted.reason == "TaskKilled"
    assert shadow_objects(cluster["k8s"]) == ([], [], None)
    after = cluster["hook"].get_inference_service(ISVC)
    assert after["spec"]["predictor"] == before["spec"]["predictor"]

    time.sleep(0.01)  # a new rollout id (its start time)
    retry = manager.start(
        name=ISVC, version="2", storage_uri=cluster["uris"]["2"], weights=[50], manifest_options={"transformer": False}
    )
    assert retry.phase is RolloutPhase.SHADOW and retry.started_at != state.started_at
    assert shadow_objects(cluster["k8s"])[2] is not None  # a fresh challenger; its mirror comes once it is Ready


@pytest.mark.parametrize(
    ("on_inconclusive", "phase", "version"),
    [("probes", RolloutPhase.PROMOTED, "2"), ("rollback", RolloutPhase.ROLLED_BACK, "1")],
)
def test_a_canary_without_users_is_inconclusive_then_the_rule_decides(cluster, on_inconclusive, phase, version):
    """No users' requests: the live verdict stays inconclusive for ``inconclusive_wait``, then ``on_inconclusive``."""
    manager = manager_for(cluster, shadow_percent=None, on_inconclusive=on_inconclusive, inconclusive_wait=1.5)
    state = manager.start(
        name=ISVC, version="2", storage_uri=cluster["uris"]["2"], weights=[50], manifest_options={"transformer": False}
    )
    assert state.phase is RolloutPhase.CANARY
    state = drive(manager, state)

    assert state.phase is phase, state.message
    assert state.analyses[0]["live"] == "inconclusive"
    assert all(check["ok"] for check in state.analysis["checks"])  # the probes passed either way
    if phase is RolloutPhase.ROLLED_BACK:
        assert state.reason == "LiveAnalysisInconclusive"
    isvc = cluster["hook"].get_inference_service(ISVC)
    assert isvc["metadata"]["annotations"][MODEL_VERSION_ANNOTATION] == version
