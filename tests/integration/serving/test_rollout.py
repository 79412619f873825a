"""ModelDeployOperator rollouts through Airflow against the fake Kubernetes API server with a KServe controller.

Real pieces: Airflow (``dag.test``), the Kubernetes client over HTTP, the MLflow server (aliases), and the KServe
model servers the canary's analysis sends its smoke requests to. The controller reproduces KServe's Serverless
traffic semantics (see ``tests.fake_k8s.kserve.KServeController``). The candidates carry the training-set lineage
(the candidate run's ``mlops.training_set_uri``, or the gate's ``evaluation_window``) the deploy task reads the
model's FeatureService from.
"""

from __future__ import annotations

import json

import pytest

from include.fraud_example import FEATURE_SERVICE
from mlops_provider.lineage import (
    CHALLENGER,
    CHAMPION,
    MODEL_VERSION_ANNOTATION,
    PROMOTION_LOCK_TAG_PREFIX,
    ROLLOUT_REASON_TAG,
    ROLLOUT_STATUS_TAG,
)
from mlops_provider.serving.rollout import ROLLOUT_STATE_ANNOTATION
from tests.airflow_helpers import run_dag, task_states, task_xcom
from tests.fake_k8s.kserve import KServeController
from tests.serving_support import MODEL_NAME, free_port

pytestmark = pytest.mark.integration

NAMESPACE = "mlops-test"
GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
ISVC = "serving-fraud-detector"


@pytest.fixture
def cluster(fake_k8s, mlflow_connection, monkeypatch, serving_models, predictor_servers, registered_versions):
    """The fake cluster with a KServe controller, the bundle pointed at it, and the registry reset."""
    from mlflow import MlflowClient

    monkeypatch.setenv("AIRFLOW__MLOPS__KUBERNETES_CONN_ID", fake_k8s.conn_id)
    monkeypatch.setenv("AIRFLOW__MLOPS__NAMESPACE", NAMESPACE)
    dead = f"http://127.0.0.1:{free_port()}"
    urls = {
        serving_models["v1"].uri: predictor_servers["v1"].url,
        serving_models["v2"].uri: predictor_servers["v2"].url,
    }
    controller = KServeController(
        url_for=lambda uri: urls.get(uri, dead),
        is_broken=lambda uri: uri == serving_models["broken"].uri,
    )
    fake_k8s.add_controller(PLURAL, controller)
    client = MlflowClient(tracking_uri=mlflow_connection.url)
    try:
        client.delete_registered_model_alias(MODEL_NAME, CHAMPION)
    except Exception:  # no alias yet
        pass

    class Cluster:
        k8s = fake_k8s
        mlflow = client

        def isvc(self) -> dict | None:
            return fake_k8s.get_object(GROUP, VERSION, NAMESPACE, PLURAL, ISVC)

        def champion(self) -> str | None:
            try:
                return client.get_model_version_by_alias(MODEL_NAME, CHAMPION).version
            except Exception:
                return None

        def candidate(self, key: str, uri: str | None = None) -> dict:
            version = registered_versions.get(key) or registered_versions["v1"]  # a broken one reuses v1's lineage
            return {
                "decision": "promote",
                "model_name": MODEL_NAME,
                "candidate_version": registered_versions[key] if key in registered_versions else "99",
                "artifact_uri": uri or serving_models[key].uri,
                "model_uri": f"models:/{MODEL_NAME}/{registered_versions.get(key, '99')}",
                "run_id": client.get_model_version(MODEL_NAME, version).run_id,
            }

        def deploy_existing(self, key: str, mode: str = "Serverless") -> dict:
            """An InferenceService already serving ``key`` (created as a previous rollout would have)."""
            from mlops_provider.hooks.kserve import KServeHook
            from mlops_provider.serving.manifests import render_inference_service

            body = render_inference_service(
                MODEL_NAME, serving_models[key].uri, name=ISVC, namespace=NAMESPACE,
                model_version=registered_versions[key], deployment_mode=mode, feature_service=FEATURE_SERVICE,
            )  # fmt: skip
            KServeHook(kubernetes_conn_id=fake_k8s.conn_id, namespace=NAMESPACE).create_inference_service(body)
            client.set_registered_model_alias(MODEL_NAME, CHAMPION, registered_versions[key])
            return self.isvc()

    cluster = Cluster()
    cluster.controller = controller
    cluster.urls = urls
    return cluster


def _traffic(isvc: dict) -> dict[str, int]:
    return {t["revisionName"]: t["percent"] for t in isvc["status"]["components"]["predictor"]["traffic"]}


def _phase(isvc: dict) -> str:
    return json.loads(isvc["metadata"]["annotations"][ROLLOUT_STATE_ANNOTATION])["phase"]


def _record_writes(k8s) -> list[dict]:
    """Record, after the KServe controller reconciled each write, what the spec asked and what KServe reports."""
    writes: list[dict] = []

    def recording(obj: dict) -> None:
        predictor = obj["spec"]["predictor"]
        writes.append(
            {
                "canary": predictor.get("canaryTrafficPercent"),
                "uri": predictor["model"].get("storageUri"),
                "phase": _phase(obj) if ROLLOUT_STATE_ANNOTATION in obj["metadata"].get("annotations", {}) else None,
                "traffic": sorted(
                    t["percent"]
                    for t in (obj.get("status", {}).get("components", {}).get("predictor", {}) or {}).get("traffic", [])
                ),
            }
        )

    k8s.add_controller(PLURAL, recording)
    return writes


def test_first_deploy_creates_the_inference_service_and_moves_champion(cluster, registered_versions, serving_models):
    dr = run_dag("serving_rollout_sync", conf={"candidate": cluster.candidate("v1")})
    assert task_states(dr) == {"deploy": "success", "smoke_test": "success"}
    result = task_xcom(dr, "deploy")
    assert result["status"] == "promoted" and result["strategy"] == "create" and result["backend"] == "kserve"
    assert result["model_version"] == registered_versions["v1"] and result["protocol"] == "v2"
    assert result["endpoint_url"] == cluster.urls[serving_models["v1"].uri]
    isvc = cluster.isvc()
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == serving_models["v1"].uri
    assert "canaryTrafficPercent" not in isvc["spec"]["predictor"]
    assert _traffic(isvc) == {f"{ISVC}-predictor-00001": 100}
    assert cluster.champion() == registered_versions["v1"]
    # The transformer looks features up through the FeatureService of the candidate's training-set lineage.
    assert f"--feature_service={FEATURE_SERVICE}" in isvc["spec"]["transformer"]["containers"][0]["args"]
    assert _phase(isvc) == "promoted"
    smoke = task_xcom(dr, "smoke_test")
    assert smoke["endpoint_url"] == result["endpoint_url"] and 0.0 <= smoke["prediction"] <= 1.0
    link = task_xcom(dr, "deploy", key="_link_kserve_endpoint")
    assert link == f"{result['endpoint_url']}/v2/models/{MODEL_NAME}"


def test_canary_is_analysed_then_promoted(cluster, registered_versions, serving_models, tmp_path):
    cluster.deploy_existing("v1")
    writes = _record_writes(cluster.k8s)
    # The gate's decision names the training set directly (no registry lookup needed for the FeatureService).
    (tmp_path / "manifest.json").write_text(json.dumps({"feature_service": FEATURE_SERVICE}))
    candidate = {
        **cluster.candidate("v2"),
        "run_id": None,
        "evaluation_window": {"training_set_uri": tmp_path.as_uri()},
    }
    dr = run_dag("serving_rollout_deferrable", conf={"candidate": candidate})
    assert task_states(dr) == {"deploy": "success", "smoke_test": "success"}
    result = task_xcom(dr, "deploy")
    assert result["status"] == "promoted" and result["strategy"] == "canary"
    assert result["analysis"]["passed"] and len(result["analysis"]["checks"]) == 2
    isvc = cluster.isvc()
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == serving_models["v2"].uri
    assert "canaryTrafficPercent" not in isvc["spec"]["predictor"]
    assert _traffic(isvc) == {f"{ISVC}-predictor-00002": 100}
    assert isvc["status"]["components"]["predictor"]["previousRolledoutRevision"] == f"{ISVC}-predictor-00001"
    assert isvc["metadata"]["annotations"][MODEL_VERSION_ANNOTATION] == registered_versions["v2"]
    assert f"--feature_service={FEATURE_SERVICE}" in isvc["spec"]["transformer"]["containers"][0]["args"]
    assert cluster.champion() == registered_versions["v2"]
    # The canary really ran at 10 % before promotion: the spec asked for it and KServe reported the 10/90 split,
    # then the promotion removed canaryTrafficPercent and the new revision took all traffic.
    canary = [w for w in writes if w["phase"] == "canary"]
    assert canary and all(w["canary"] == 10 and w["uri"] == serving_models["v2"].uri for w in canary)
    assert [10, 90] in [w["traffic"] for w in canary]
    promote = [w for w in writes if w["phase"] == "promote"]
    assert promote and promote[0]["canary"] is None and promote[-1]["traffic"] == [100]
    assert [w["phase"] for w in writes][-1] == "promoted"
    assert writes.index(canary[0]) < writes.index(promote[0])


def test_stepped_canary_raises_weight_up_to_max_then_promotes(cluster, registered_versions):
    seen: list = []

    def recording(obj):  # runs after the KServe controller: records the traffic it reconciled
        traffic = (obj.get("status", {}).get("components", {}).get("predictor", {}) or {}).get("traffic") or []
        seen.append(tuple(sorted(t["percent"] for t in traffic)))

    cluster.k8s.add_controller(PLURAL, recording)
    cluster.deploy_existing("v1")
    dr = run_dag("serving_rollout_stepped", conf={"candidate": cluster.candidate("v2")})
    assert task_states(dr)["deploy"] == "success", task_states(dr)
    shares = [s for s in dict.fromkeys(seen) if len(s) == 2]
    assert shares == [(10, 90), (30, 70), (50, 50)]
    assert _traffic(cluster.isvc()) == {f"{ISVC}-predictor-00002": 100}
    assert cluster.champion() == registered_versions["v2"]


def test_canary_that_never_becomes_ready_is_rolled_back(cluster, registered_versions, serving_models):
    cluster.deploy_existing("v1")
    dr = run_dag(
        "serving_rollout_deferrable", conf={"candidate": cluster.candidate("broken", serving_models["broken"].uri)}
    )
    assert task_states(dr) == {"deploy": "failed", "smoke_test": "upstream_failed"}
    result = task_xcom(dr, "deploy")
    assert result["status"] == "rolled_back" and result["reason"] == "RevisionFailed"
    assert "model load failed" in result["message"]
    isvc = cluster.isvc()
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == serving_models["v1"].uri
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 0
    assert _traffic(isvc)[f"{ISVC}-predictor-00001"] == 100
    assert isvc["status"]["url"] == cluster.urls[serving_models["v1"].uri]
    assert cluster.champion() == registered_versions["v1"]
    # The rollback is in the audit log, with the reason and the endpoint it left serving the previous version.
    from mlops_provider.audit import ROLLBACK, read_audit

    [rollback] = [e for e in read_audit(MODEL_NAME) if e["kind"] == ROLLBACK and e["actor"]["run_id"] == dr.run_id]
    assert rollback["outcome"] == "rolled_back" and "RevisionFailed" in rollback["reason"]
    assert rollback["links"]["endpoint"] == f"{result['endpoint_url']}/v2/models/{MODEL_NAME}"


def test_canary_not_ready_by_the_progress_deadline_is_rolled_back(cluster, registered_versions, serving_models):
    cluster.deploy_existing("v1")
    slow = serving_models["v2"].uri + "-slow"
    dr = run_dag("serving_rollout_short_deadline", conf={"candidate": cluster.candidate("v2", slow)})
    assert task_states(dr)["deploy"] == "failed"
    result = task_xcom(dr, "deploy")
    assert result["status"] == "rolled_back" and result["reason"] == "Deploying"
    assert "not Ready within the progress deadline of 3 s" in result["message"]
    assert "Waiting for the revision's pods to be ready" in result["message"]
    isvc = cluster.isvc()
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == serving_models["v1"].uri
    assert _traffic(isvc)[f"{ISVC}-predictor-00001"] == 100
    assert cluster.champion() == registered_versions["v1"]


@pytest.mark.parametrize(
    ("dag_id", "unreachable", "symptom"),
    [
        ("serving_rollout_sync", True, "connection refused"),  # the canary's endpoint does not answer
        ("serving_rollout_strict", False, "outside [2.0, 3.0]"),  # it answers, with predictions failing sanity
    ],
)
def test_canary_failing_its_analysis_is_rolled_back(
    cluster, registered_versions, serving_models, dag_id, unreachable, symptom
):
    cluster.deploy_existing("v1")
    uri = serving_models["v2"].uri + ("-unreachable" if unreachable else "")
    cluster.mlflow.set_registered_model_alias(MODEL_NAME, CHALLENGER, registered_versions["v2"])  # as the gate does
    dr = run_dag(dag_id, conf={"candidate": cluster.candidate("v2", uri)})
    assert task_states(dr)["deploy"] == "failed"
    result = task_xcom(dr, "deploy")
    assert result["status"] == "rolled_back" and result["reason"] == "AnalysisFailed"
    assert len(result["analysis"]["checks"]) == 2 and not any(c["ok"] for c in result["analysis"]["checks"])
    assert symptom in result["message"].lower()
    isvc = cluster.isvc()
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == serving_models["v1"].uri
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 0
    assert _traffic(isvc)[f"{ISVC}-predictor-00001"] == 100
    assert cluster.champion() == registered_versions["v1"]
    # The outcome is recorded on the version, and challenger no longer names it.
    tags = cluster.mlflow.get_model_version(MODEL_NAME, registered_versions["v2"]).tags
    assert (tags[ROLLOUT_STATUS_TAG], tags[ROLLOUT_REASON_TAG]) == ("rolled_back", "AnalysisFailed")
    challenger = _alias(cluster, CHALLENGER)
    assert challenger != registered_versions["v2"]
    assert not any(
        k.startswith(PROMOTION_LOCK_TAG_PREFIX) for k in cluster.mlflow.get_registered_model(MODEL_NAME).tags
    )


def _alias(cluster, alias: str) -> str | None:
    try:
        return cluster.mlflow.get_model_version_by_alias(MODEL_NAME, alias).version
    except Exception:  # not set
        return None


def test_canary_ignored_by_kserve_is_not_reported_as_a_canary(cluster, registered_versions, serving_models):
    """Older KServe in raw mode drops canaryTrafficPercent silently: the operator must notice and roll back."""
    cluster.controller.ignore_canary = True
    cluster.deploy_existing("v1")
    dr = run_dag("serving_rollout_sync", conf={"candidate": cluster.candidate("v2")})
    assert task_states(dr)["deploy"] == "failed"
    result = task_xcom(dr, "deploy")
    assert result["status"] == "rolled_back" and result["reason"] == "CanaryNotApplied"
    assert "canary did not happen" in result["message"]
    assert cluster.isvc()["spec"]["predictor"]["model"]["storageUri"] == serving_models["v1"].uri
    assert cluster.champion() == registered_versions["v1"]


def test_raw_deployment_refuses_canary_without_touching_anything(cluster, registered_versions):
    before = cluster.deploy_existing("v1", mode="RawDeployment")
    dr = run_dag("serving_rollout_raw_refuse", conf={"candidate": cluster.candidate("v2")})
    assert task_states(dr)["deploy"] == "failed"
    after = cluster.isvc()
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"] == before["spec"]
    assert cluster.champion() == registered_versions["v1"]


def test_raw_deployment_rolls_out_with_analysis(cluster, registered_versions, serving_models):
    cluster.deploy_existing("v1", mode="RawDeployment")
    dr = run_dag("serving_rollout_sync", conf={"candidate": cluster.candidate("v2")})
    assert task_states(dr) == {"deploy": "success", "smoke_test": "success"}
    result = task_xcom(dr, "deploy")
    assert result["status"] == "promoted" and result["strategy"] == "rolling"
    assert result["deployment_mode"] == "RawDeployment" and result["traffic"] == {}
    isvc = cluster.isvc()
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == serving_models["v2"].uri
    assert "canaryTrafficPercent" not in isvc["spec"]["predictor"]
    assert cluster.champion() == registered_versions["v2"]
