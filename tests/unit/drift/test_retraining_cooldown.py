"""Retraining throttle: the decision rule, and the operator through Airflow (skips propagate downstream)."""

from __future__ import annotations

import datetime as dt

import pytest

from mlops_provider.operators.retraining import VARIABLE_PREFIX, decide
from tests.airflow_helpers import run_dag, task_states, task_xcom

T0 = dt.datetime(2026, 11, 25, 8, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def test_first_launch_proceeds():
    assert decide(now=T0, launches=[], cooldown=6 * HOUR, daily_cap=2, forced=False)[0] is True


def test_inside_cooldown_skips_and_says_when():
    proceed, reason = decide(now=T0 + 2 * HOUR, launches=[T0], cooldown=6 * HOUR, daily_cap=2, forced=False)
    assert proceed is False
    assert "inside the cooldown" in reason and "next allowed in 4:00:00" in reason


def test_after_cooldown_proceeds_until_the_daily_cap():
    assert decide(now=T0 + 7 * HOUR, launches=[T0], cooldown=6 * HOUR, daily_cap=2, forced=False)[0] is True
    proceed, reason = decide(
        now=T0 + 15 * HOUR, launches=[T0 - 9 * HOUR, T0, T0 + 7 * HOUR], cooldown=6 * HOUR, daily_cap=2, forced=False
    )
    assert proceed is False and "daily cap reached: 2" in reason


def test_cap_resets_on_a_new_utc_day():
    launches = [T0, T0 + 7 * HOUR]
    assert decide(now=T0 + 17 * HOUR, launches=launches, cooldown=6 * HOUR, daily_cap=2, forced=False)[0] is True


def test_manual_runs_with_as_of_always_proceed():
    assert decide(now=T0 + HOUR, launches=[T0, T0], cooldown=6 * HOUR, daily_cap=1, forced=True)[0] is True


@pytest.fixture
def clean_launches():
    from airflow.models.variable import Variable

    key = f"{VARIABLE_PREFIX}consumer_test_model"
    Variable.delete(key)
    yield key
    Variable.delete(key)


def test_operator_through_airflow_skips_a_second_run_inside_the_cooldown(clean_launches):
    first = run_dag("drift_training_consumer")
    assert task_states(first) == {"retraining_cooldown": "success", "train": "success"}
    assert task_xcom(first, "retraining_cooldown")["decision"] == "proceed"

    second = run_dag("drift_training_consumer")
    assert task_states(second) == {"retraining_cooldown": "skipped", "train": "skipped"}
    verdict = task_xcom(second, "retraining_cooldown")
    assert verdict["decision"] == "skip" and "inside the cooldown" in verdict["reason"]

    forced = run_dag("drift_training_consumer", conf={"as_of": "2026-11-20"})
    assert task_states(forced) == {"retraining_cooldown": "success", "train": "success"}
    assert task_xcom(forced, "retraining_cooldown")["reason"] == "manual run with as_of: always proceeds"


def retry_task(dag_run, task_id: str):
    """Run ``task_id`` of ``dag_run`` again as Airflow's retry does: same run, next try_number."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.sdk.definitions.dag import _run_task
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState

    from tests.airflow_helpers import load_dag

    task = load_dag(dag_run.dag_id).get_task(task_id)
    with create_session() as session:
        ti = session.query(TaskInstance).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id=task_id).one()
        ti.try_number += 1
        ti.state = TaskInstanceState.SCHEDULED
        session.commit()
        try_number = ti.try_number
        session.expunge(ti)
    _run_task(ti=ti, task=task)
    return try_number


def test_a_retry_of_the_cooldown_task_recognises_its_own_launch(clean_launches):
    import json

    from airflow.models.variable import Variable

    first = run_dag("drift_training_consumer")
    assert task_xcom(first, "retraining_cooldown")["decision"] == "proceed"
    recorded = json.loads(Variable.get(clean_launches))
    assert retry_task(first, "retraining_cooldown") == 2
    assert task_states(first)["retraining_cooldown"] == "success"
    verdict = task_xcom(first, "retraining_cooldown")
    assert verdict["decision"] == "proceed" and "already recorded" in verdict["reason"], verdict
    # The retry neither counts as a second launch nor moves the recorded one.
    assert json.loads(Variable.get(clean_launches)) == recorded
    assert verdict["launches_today"] == 1
    # Another run inside the cooldown still skips.
    second = run_dag("drift_training_consumer")
    assert task_states(second)["retraining_cooldown"] == "skipped"
    # The audit log holds one decision per run: the retry kept the first try's entry, the skip has its own.
    from mlops_provider.audit import RETRAINING_DECISION, read_audit

    decisions = {
        e["actor"]["run_id"]: e
        for e in read_audit("consumer_test_model")
        if e["kind"] == RETRAINING_DECISION and e["actor"]["run_id"] in (first.run_id, second.run_id)
    }
    assert len([e for e in read_audit("consumer_test_model") if e["actor"]["run_id"] == first.run_id]) == 1
    assert decisions[first.run_id]["outcome"] == "proceed" and decisions[first.run_id]["actor"]["try_number"] == 1
    assert "already recorded" not in decisions[first.run_id]["reason"]
    assert decisions[second.run_id]["outcome"] == "skip" and "inside the cooldown" in decisions[second.run_id]["reason"]
    assert decisions[second.run_id]["links"]["airflow_task"].endswith("/tasks/retraining_cooldown")
