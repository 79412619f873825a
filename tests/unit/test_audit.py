"""The audit log: one immutable entry per decision, rewritten (not duplicated) on retry, never lost in a race."""

from __future__ import annotations

import json
import threading
from types import SimpleNamespace

import pytest

from mlops_provider.audit import (
    APPROVAL,
    GATE_DECISION,
    PROMOTION,
    AuditError,
    export_jsonl,
    read_audit,
    record_audit,
)


def task_context(task_id: str = "gate", try_number: int = 1, run_id: str = "manual__2031-03-01") -> dict:
    """What ``record_audit`` reads of an Airflow task context: the task instance and its DAG run."""
    ti = SimpleNamespace(dag_id="train", run_id=run_id, task_id=task_id, map_index=-1, try_number=try_number)
    return {"ti": ti, "dag_run": SimpleNamespace(run_type="manual", triggering_user_name="alice")}


@pytest.fixture
def data_root(tmp_path):
    return tmp_path.as_uri()


def test_an_entry_records_who_when_why_and_links(data_root):
    entry = record_audit(GATE_DECISION, "m1", outcome="promote", reason="roc_auc 0.91 >= 0.65", subject="3",
                         context=task_context(), details={"candidate_version": "3"},
                         links={"mlflow_model_version": "http://mlflow/#/models/m1/versions/3", "none": None},
                         data_root=data_root)  # fmt: skip
    [stored] = read_audit("m1", data_root=data_root)
    assert stored == entry
    assert stored["actor"]["name"] == "train/manual__2031-03-01/gate"
    assert stored["actor"]["triggered_by_user"] == "alice" and stored["actor"]["run_type"] == "manual"
    assert stored["links"]["airflow_task"].endswith("/dags/train/runs/manual__2031-03-01/tasks/gate")
    assert stored["links"]["mlflow_model_version"] == "http://mlflow/#/models/m1/versions/3"
    assert "none" not in stored["links"]
    assert stored["details"] == {"candidate_version": "3"} and stored["subject"] == "3"


def test_a_retry_rewrites_its_own_entry_instead_of_adding_one(data_root, tmp_path):
    first = record_audit(GATE_DECISION, "m1", outcome="promote", reason="first try", subject="3",
                         context=task_context(try_number=1), data_root=data_root)  # fmt: skip
    second = record_audit(GATE_DECISION, "m1", outcome="promote", reason="second try", subject="3",
                          context=task_context(try_number=2), data_root=data_root)  # fmt: skip
    assert first["id"] == second["id"], "the try number is not part of the key"
    [stored] = read_audit("m1", data_root=data_root)
    assert stored["reason"] == "second try" and stored["actor"]["try_number"] == 2
    assert len(list((tmp_path / "audit" / "m1").rglob("*.json"))) == 1
    # A retry that crossed midnight left the first try's copy in the day before: still one entry, the latest.
    [day] = (tmp_path / "audit" / "m1").iterdir()
    stale = json.loads(next(day.iterdir()).read_text()) | {"at": "2000-01-01T00:00:00+00:00", "reason": "old"}
    (tmp_path / "audit" / "m1" / "dt=2000-01-01").mkdir()
    (tmp_path / "audit" / "m1" / "dt=2000-01-01" / f"gate_decision-{first['id']}.json").write_text(json.dumps(stale))
    assert [e["reason"] for e in read_audit("m1", data_root=data_root)] == ["second try"]


def test_concurrent_decisions_are_all_kept(data_root):
    """Tasks deciding at the same moment write their own files: no entry is lost, none doubled."""
    start = threading.Barrier(8)

    def decide(i: int) -> None:
        start.wait()
        record_audit(PROMOTION if i % 2 else GATE_DECISION, "m1", outcome="promoted", reason=f"task {i}",
                     context=task_context(task_id=f"t{i}"), data_root=data_root)  # fmt: skip

    threads = [threading.Thread(target=decide, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(e["reason"] for e in read_audit("m1", data_root=data_root)) == [f"task {i}" for i in range(8)]


def test_export_is_json_lines_oldest_first_and_filters_by_model_and_time(data_root):
    for i, model in enumerate(("m1", "m2", "m1")):
        record_audit(GATE_DECISION, model, outcome="reject", reason=f"r{i}", context=task_context(task_id=f"t{i}"),
                     data_root=data_root)  # fmt: skip
    lines = list(export_jsonl(data_root=data_root))
    assert all(line.endswith("\n") for line in lines)
    entries = [json.loads(line) for line in lines]
    assert [e["reason"] for e in entries] == ["r0", "r1", "r2"]
    assert [e["reason"] for e in map(json.loads, export_jsonl("m1", data_root=data_root))] == ["r0", "r2"]
    assert list(export_jsonl(since="2999-01-01", data_root=data_root)) == []
    assert [e["reason"] for e in read_audit(limit=2, data_root=data_root)] == ["r2", "r1"]


def test_an_approval_outside_airflow_needs_its_own_key_and_actor(data_root):
    with pytest.raises(AuditError, match="needs the task context, or both key and actor"):
        record_audit(APPROVAL, "m1", outcome="approved", reason="reviewed", data_root=data_root)
    with pytest.raises(AuditError, match="Unknown audit kind 'approve'"):
        record_audit("approve", "m1", outcome="approved", reason="x", context=task_context(), data_root=data_root)
    entry = record_audit(APPROVAL, "m1", outcome="approved", reason="reviewed the gate report", subject="3",
                         key="approval/m1/3", actor={"type": "user", "name": "alice"}, data_root=data_root)  # fmt: skip
    assert read_audit("m1", data_root=data_root) == [entry]


def test_the_cli_exports_json_lines(monkeypatch, capsys, tmp_path):
    from include.audit import main
    from mlops_provider.settings import reset_settings

    monkeypatch.setenv("AIRFLOW__MLOPS__DATA_ROOT", tmp_path.as_uri())
    reset_settings()
    try:
        record_audit(GATE_DECISION, "m1", outcome="promote", reason="ok", context=task_context())
        assert main(["export", "--model", "m1", "--since", "2000-01-01"]) == 0
    finally:
        reset_settings()
    [line] = capsys.readouterr().out.splitlines()
    assert json.loads(line)["reason"] == "ok"
