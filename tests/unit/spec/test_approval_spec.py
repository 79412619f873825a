"""``serving.approval``: validated like every spec key, and wired by the DAG factory between gate and deploy."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mlops_provider.exceptions import ModelSpecError
from mlops_provider.spec.load import parse_spec
from tests.airflow_helpers import TRAINING_CHAIN, assert_chain
from tests.conftest import REPO_ROOT

SOURCE = "include/models/refunds.yaml"


def _with_approval(spec_dict: dict, approval) -> dict:
    return {**spec_dict, "serving": {**spec_dict.get("serving", {}), "approval": approval}}


def test_no_approval_by_default_and_the_gate_feeds_the_deploy(spec_dict):
    from mlops_provider.spec.dags import build_dags

    spec = parse_spec(spec_dict, SOURCE, REPO_ROOT)
    assert spec.serving.approval.required is False
    dag = build_dags(spec)["refunds__training"]
    assert "approve_rollout" not in dag.task_ids
    assert_chain(dag)
    assert dag.get_task("evaluation_gate").promotion_lock_ttl == 7200


def test_required_approval_sits_between_gate_and_deploy(spec_dict):
    from mlops_provider.operators.approval import ModelApprovalOperator
    from mlops_provider.spec.dags import build_dags

    raw = _with_approval(spec_dict, {"required": True, "timeout": "6h", "assigned_users": ["alice"]})
    spec = parse_spec(raw, SOURCE, REPO_ROOT)
    assert spec.serving.approval.timeout_delta == timedelta(hours=6)
    dag = build_dags(spec)["refunds__training"]
    gate_at = TRAINING_CHAIN.index("evaluation_gate")
    assert_chain(dag, (*TRAINING_CHAIN[: gate_at + 1], "approve_rollout", *TRAINING_CHAIN[gate_at + 1 :]))
    approve = dag.get_task("approve_rollout")
    assert isinstance(approve, ModelApprovalOperator)
    assert approve.model_name == "refunds" and approve.response_timeout == timedelta(hours=6)
    assert approve.options == ["Approve", "Reject"] and approve.defaults == ["Reject"]
    assert approve.assigned_users == [{"id": "alice", "name": "alice"}]
    # The deploy still reads the gate's decision; the gate's lock outlasts the wait for a person.
    assert dag.get_task("deploy").upstream_task_ids == {"evaluation_gate", "approve_rollout"}
    assert dag.get_task("evaluation_gate").promotion_lock_ttl == 7200 + 6 * 3600


@pytest.mark.parametrize(
    ("approval", "message"),
    [
        ({"required": "yes"}, "serving.approval.required: expected true or false, got 'yes'"),
        ({"required": True, "timeout": "1 day"}, "serving.approval.timeout: expected a duration like 7d"),
        ({"required": True, "approvers": ["a"]}, "serving.approval.approvers: unknown key; allowed: required"),
        ({"assigned_users": "alice"}, "serving.approval.assigned_users: expected a list of Airflow user ids"),
        ({"assigned_users": [""]}, "serving.approval.assigned_users[0]: expected an Airflow user id"),
    ],
)
def test_bad_approval_settings_name_the_key(spec_dict, approval, message):
    with pytest.raises(ModelSpecError) as err:
        parse_spec(_with_approval(spec_dict, approval), SOURCE, REPO_ROOT)
    assert message in str(err.value)
    assert str(err.value).startswith(SOURCE)
