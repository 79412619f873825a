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
