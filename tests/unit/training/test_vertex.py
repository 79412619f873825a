"""The Vertex AI hook (client, job lookups) and the CustomJob trigger."""

from __future__ import annotations

from types import SimpleNamespace


class _Client:
    def __init__(self, jobs):
        self.jobs = jobs
        self.requests: list = []

    def list_custom_jobs(self, request):
        self.requests.append(request)
        return self.jobs

    def get_custom_job(self, name):
        return next(job for job in self.jobs if job.name == name)

    def cancel_custom_job(self, name):
        self.requests.append(("cancel", name))


def _job(name: str, state: str, message: str = ""):
    return SimpleNamespace(name=name, state=SimpleNamespace(name=state), error=SimpleNamespace(message=message))


def test_vertex_trigger_serializes_every_argument():
    from mlops_provider.triggers.vertex import VertexCustomJobTrigger

    trigger = VertexCustomJobTrigger(job_name="projects/p/locations/r/customJobs/1", gcp_conn_id="gcp", region="r",
                                     poll_interval=5, timeout=60, started_at=100.0)  # fmt: skip
    path, kwargs = trigger.serialize()
    assert path == "mlops_provider.triggers.vertex.VertexCustomJobTrigger"
    assert VertexCustomJobTrigger(**kwargs).serialize() == (path, kwargs)


def test_hook_finds_only_live_jobs_by_label_and_maps_states(monkeypatch):
    from mlops_provider.hooks.vertex import VertexTrainingHook

    client = _Client(
        [
            _job("jobs/1", "JOB_STATE_FAILED", "OOM"),
            _job("jobs/2", "JOB_STATE_RUNNING"),
            _job("jobs/3", "JOB_STATE_SUCCEEDED"),
        ]
    )
    hook = VertexTrainingHook("gcp", "europe-west4")
    monkeypatch.setattr(hook, "build_client", lambda: client)
    assert hook.find_custom_job("p", {"mlops-key": "abc"}) == "jobs/2"
    assert client.requests == [{"parent": "projects/p/locations/europe-west4", "filter": "labels.mlops-key=abc"}]
    assert hook.get_job_outcome("jobs/1") == ("failed", "OOM")
    assert hook.get_job_outcome("jobs/2") == ("running", "JOB_STATE_RUNNING")
    assert hook.get_job_outcome("jobs/3") == ("success", "JOB_STATE_SUCCEEDED")
    hook.cancel_custom_job("jobs/2")
    assert client.requests[-1] == ("cancel", "jobs/2")
    client.jobs = [_job("jobs/1", "JOB_STATE_CANCELLED")]
    assert hook.find_custom_job("p", {"mlops-key": "abc"}) is None


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

    async def events(trigger):
        return [event.payload async for event in trigger.run()]

    trigger = VertexCustomJobTrigger(job_name="jobs/1", gcp_conn_id=None, region="r", poll_interval=0)
    assert asyncio.run(events(trigger)) == [{"status": "failed", "job_name": "jobs/1", "message": "exited with 137"}]
    # The next poll raises: the trigger reports it as one error event instead of dying.
    assert asyncio.run(events(trigger)) == [
        {"status": "error", "job_name": "jobs/1", "message": "RuntimeError: 403 permission denied"}
    ]
