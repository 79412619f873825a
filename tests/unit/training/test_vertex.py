"""The Vertex AI job states and the CustomJob trigger (the hook against a fake Vertex AI: tests/integration)."""

from __future__ import annotations

import json
from types import SimpleNamespace


def _job(name: str, state: str, message: str = ""):
    return SimpleNamespace(name=name, state=SimpleNamespace(name=state), error=SimpleNamespace(message=message))


def test_vertex_trigger_serializes_every_argument():
    from mlops_provider.triggers.vertex import VertexCustomJobTrigger

    trigger = VertexCustomJobTrigger(job_name="projects/p/locations/r/customJobs/1", gcp_conn_id="gcp", region="r",
                                     poll_interval=5, timeout=60, started_at=100.0)  # fmt: skip
    path, kwargs = trigger.serialize()
    assert path == "mlops_provider.triggers.vertex.VertexCustomJobTrigger"
    assert VertexCustomJobTrigger(**kwargs).serialize() == (path, kwargs)


def test_job_outcome_maps_states_and_carries_the_error():
    from mlops_provider.hooks.vertex import job_outcome

    assert job_outcome(_job("jobs/1", "JOB_STATE_FAILED", "OOM")) == ("failed", "OOM")
    assert job_outcome(_job("jobs/2", "JOB_STATE_RUNNING")) == ("running", "JOB_STATE_RUNNING")
    assert job_outcome(_job("jobs/3", "JOB_STATE_SUCCEEDED")) == ("success", "JOB_STATE_SUCCEEDED")
    assert job_outcome(_job("jobs/4", "JOB_STATE_CANCELLED")) == ("cancelled", "JOB_STATE_CANCELLED")
    assert job_outcome(_job("jobs/5", "JOB_STATE_EXPIRED")) == ("failed", "JOB_STATE_EXPIRED")


def test_trigger_yields_the_outcome_and_turns_errors_into_an_event(monkeypatch):
    import asyncio

    from mlops_provider.hooks.vertex import VertexTrainingHook
    from mlops_provider.triggers.vertex import VertexCustomJobTrigger

    outcomes = [("running", "JOB_STATE_RUNNING"), ("failed", "exited with 137")]

    def get_job_outcome(self, name):
        if not outcomes:
            raise RuntimeError("403 permission denied")
        return outcomes.pop(0)

    monkeypatch.setattr(VertexTrainingHook, "get_job_outcome", get_job_outcome)
    connection = {"conn_type": "google_cloud_platform", "extra": {"is_anonymous": True, "project": "p"}}
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", json.dumps(connection))

    async def events(trigger):
        return [event.payload async for event in trigger.run()]

    trigger = VertexCustomJobTrigger(job_name="jobs/1", gcp_conn_id="google_cloud_default", region="r", poll_interval=0)
    assert asyncio.run(events(trigger)) == [{"status": "failed", "job_name": "jobs/1", "message": "exited with 137"}]
    # The next poll raises: the trigger reports it as one error event instead of dying.
    assert asyncio.run(events(trigger)) == [
        {"status": "error", "job_name": "jobs/1", "message": "RuntimeError: 403 permission denied"}
    ]


def test_trigger_yields_a_timeout_event_once_the_deadline_passed(monkeypatch):
    import asyncio

    from mlops_provider.hooks.vertex import VertexTrainingHook
    from mlops_provider.triggers.vertex import VertexCustomJobTrigger

    monkeypatch.setattr(VertexTrainingHook, "get_job_outcome", lambda self, name: ("running", "JOB_STATE_RUNNING"))
    connection = {"conn_type": "google_cloud_platform", "extra": {"is_anonymous": True, "project": "p"}}
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", json.dumps(connection))

    async def events(trigger):
        return [event.payload async for event in trigger.run()]

    trigger = VertexCustomJobTrigger(job_name="jobs/1", gcp_conn_id="google_cloud_default", region="r",
                                     poll_interval=0.05, timeout=0.2)  # fmt: skip
    assert asyncio.run(events(trigger)) == [
        {"status": "timeout", "job_name": "jobs/1", "message": "still JOB_STATE_RUNNING after 0.2s"}
    ]
