"""Extra links: what ``persist`` stores is what the worker's post-task ``get_link`` answers, with no XCom read."""

from __future__ import annotations

from types import SimpleNamespace

from mlops_provider.links.mlflow import MlflowModelVersionLink, MlflowRunLink


class RecordingTi(SimpleNamespace):
    def xcom_push(self, key, value):
        self.pushed[key] = value


def make_ti(task_id: str) -> RecordingTi:
    return RecordingTi(dag_id="d", task_id=task_id, run_id="r", map_index=-1, pushed={})


def test_persisted_link_is_pushed_and_answered_for_that_task_instance_only():
    ti = make_ti("persisted")
    url = MlflowRunLink.persist({"ti": ti}, base_url="http://mlflow", experiment_id="1", run_id="abc")
    assert url == "http://mlflow/#/experiments/1/runs/abc"
    assert ti.pushed == {"_link_mlflow_run": url}
    assert MlflowRunLink().get_link(None, ti_key=ti) == url
    # Another link of the same task, and the same link of another task: never persisted, so empty.
    assert MlflowModelVersionLink().get_link(None, ti_key=ti) == ""
    assert MlflowRunLink().get_link(None, ti_key=make_ti("other")) == ""
