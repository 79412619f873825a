"""InferenceServiceReadyTrigger: serialization, readiness rules, and a real run against the fake API server."""

from __future__ import annotations

import asyncio
import time

import pytest

from mlops_provider.serving.status import evaluate_readiness
from mlops_provider.triggers.kserve import InferenceServiceReadyTrigger

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"


def _isvc(generation=2, observed=2, ready="True", reason=None, message=None, created="r-2", ready_rev="r-2", mode=None):
    obj = {
        "metadata": {"name": "m", "generation": generation, "annotations": {}},
        "status": {
            "observedGeneration": observed,
            "conditions": [{"type": "Ready", "status": ready, "reason": reason, "message": message}],
            "components": {"predictor": {"latestCreatedRevision": created, "latestReadyRevision": ready_rev}},
        },
    }
    if mode:
        obj["status"]["deploymentMode"] = mode
    return obj


def test_serialize_round_trip():
    trigger = InferenceServiceReadyTrigger(
        name="m", namespace="ns", kubernetes_conn_id="k", generation=3, deadline=123.5, poll_interval=0.5
    )
    path, kwargs = trigger.serialize()
    assert path == "mlops_provider.triggers.kserve.InferenceServiceReadyTrigger"
    assert kwargs == {
        "name": "m",
        "namespace": "ns",
        "kubernetes_conn_id": "k",
        "generation": 3,
        "deadline": 123.5,
        "poll_interval": 0.5,
    }
    assert InferenceServiceReadyTrigger(**kwargs).serialize() == (path, kwargs)


@pytest.mark.parametrize(
    ("obj", "generation", "state", "reason"),
    [
        (_isvc(), 2, "ready", "Ready"),
        (_isvc(observed=1), 2, "pending", "NotObserved"),
        (_isvc(ready="False", reason="RevisionFailed", message="boom"), 2, "failed", "RevisionFailed"),
        (_isvc(ready="Unknown", reason="Deploying"), 2, "pending", "Deploying"),
        (_isvc(created="r-3", ready_rev="r-2"), 2, "pending", "RevisionNotReady"),
        (_isvc(created="r-3", ready_rev="r-2", mode="RawDeployment"), 2, "ready", "Ready"),
        (None, 1, "failed", "NotFound"),
    ],
)
def test_evaluate_readiness(obj, generation, state, reason):
    result = evaluate_readiness(obj, generation)
    assert (result["state"], result["reason"]) == (state, reason)


def test_model_load_failure_is_terminal():
    obj = _isvc(ready="Unknown")
    obj["status"]["modelStatus"] = {
        "transitionStatus": "BlockedByFailedLoad",
        "lastFailureInfo": {"reason": "ModelLoadFailed", "message": "no model file in /mnt/models"},
    }
    assert evaluate_readiness(obj, 2) == {
        "state": "failed", "reason": "ModelLoadFailed", "message": "no model file in /mnt/models",
        "deployment_mode": "Serverless", "traffic": {}, "url": None,
    }  # fmt: skip


@pytest.mark.integration
def test_trigger_run_against_the_fake_api_server(fake_k8s):
    def controller(obj):
        status = obj.setdefault("status", {})
        good = obj["spec"]["predictor"]["model"]["storageUri"].endswith("good")
        status["observedGeneration"] = (
            obj["metadata"]["generation"]
            if good or "slow" not in obj["spec"]["predictor"]["model"]["storageUri"]
            else 0
        )
        status["conditions"] = [
            {
                "type": "Ready",
                "status": "True" if good else "Unknown",
                "reason": None if good else "Deploying",
                "message": "waiting for pods",
            }
        ]

    fake_k8s.add_controller(PLURAL, controller)
    for name, uri in (("good", "s3://m/good"), ("slow", "s3://m/slow")):
        fake_k8s.put_object(GROUP, VERSION, "default", PLURAL, {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "InferenceService", "metadata": {"name": name},
            "spec": {"predictor": {"model": {"modelFormat": {"name": "xgboost"}, "storageUri": uri}}},
        })  # fmt: skip

    async def first_event(name: str, deadline: float):
        trigger = InferenceServiceReadyTrigger(
            name=name,
            namespace="default",
            kubernetes_conn_id=fake_k8s.conn_id,
            generation=1,
            deadline=deadline,
            poll_interval=0.05,
        )
        events = [event async for event in trigger.run()]
        assert len(events) == 1
        return events[0].payload

    ready = asyncio.run(first_event("good", time.time() + 10))
    assert ready["status"] == "ready" and ready["name"] == "good"
    started = time.monotonic()
    timeout = asyncio.run(first_event("slow", time.time() + 0.5))
    assert timeout["status"] == "timeout" and timeout["reason"] == "NotObserved"
    assert time.monotonic() - started < 5
    missing = asyncio.run(first_event("absent", time.time() + 5))
    assert missing["status"] == "failed" and missing["reason"] == "NotFound"
    broken_conn = InferenceServiceReadyTrigger(
        name="good", namespace="default", kubernetes_conn_id="no_such_conn", generation=1, deadline=time.time() + 5
    )

    async def run_broken():
        return [event async for event in broken_conn.run()]

    (event,) = asyncio.run(run_broken())
    assert event.payload["status"] == "error" and "no_such_conn" in event.payload["message"]
