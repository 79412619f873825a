"""The spec's ``labels:`` section and the ``<model>__label_feedback`` DAG it generates."""

from __future__ import annotations

import pytest

from mlops_provider.exceptions import ModelSpecError
from mlops_provider.spec.load import parse_spec
from tests.conftest import REPO_ROOT


def _parse(raw):
    return parse_spec(raw, "include/models/refunds.yaml", REPO_ROOT)


def test_no_labels_section_no_label_feedback_dag(spec_dict):
    from mlops_provider.spec.dags import build_dags

    spec = _parse(spec_dict)
    assert spec.labels is None
    assert "refunds__label_feedback" not in build_dags(spec)


def test_labels_defaults_and_the_generated_dag(spec_dict):
    from mlops_provider.spec.dags import build_dags

    spec_dict["labels"] = {}
    spec_dict["drift"] = {"policy": {"max_performance_drop": 0.03}}
    spec = _parse(spec_dict)
    assert (spec.labels.join, spec.labels.max_delay_days, spec.labels.min_rows) == ("request_id", 7, 200)
    dag = build_dags(spec)["refunds__label_feedback"]
    assert dag.schedule == "@daily" and "refunds" in dag.tags and dag.doc_md
    assert {t.task_id for t in dag.tasks} == {
        "label_feedback",
        "drift_exceeds_policy",
        "emit_drift_event",
        "alert_drift",
    }
    feedback = dag.get_task("label_feedback")
    assert (feedback.model_name, feedback.dataset, feedback.label_column) == ("refunds", "orders", "refunded")
    assert (feedback.join, feedback.max_delay_days, dag.params["min_labeled_rows"]) == ("request_id", 7, 200)
    assert feedback.policy == {"max_performance_drop": 0.03}, "the drift policy's threshold applies"
    assert [a.name for a in dag.get_task("emit_drift_event").outlets] == ["drift.refunds"]
    assert all(task.retries >= 1 for task in dag.tasks)


def test_an_entity_time_join_uses_the_entity_keys_that_are_model_inputs(spec_dict):
    from mlops_provider.spec.dags import build_dags

    spec_dict["features"]["entity_keys"] = ["region_code"]
    spec_dict["labels"] = {"join": "entity_time", "max_delay": "36h", "tolerance": "2m", "min_rows": 50,
                           "schedule": "0 4 * * *", "source": "s3://labels/refunds"}  # fmt: skip
    dag = build_dags(_parse(spec_dict))["refunds__label_feedback"]
    feedback = dag.get_task("label_feedback")
    assert (feedback.entity_columns, feedback.timestamp_column) == (["region_code"], "ordered_at")
    assert (feedback.max_delay_days, feedback.tolerance_minutes, dag.params["min_labeled_rows"]) == (2, 2.0, 50)
    assert dag.schedule == "0 4 * * *"
    assert feedback.labels_uri == "s3://labels/refunds"


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"join": "order_id"}, "labels.join: expected one of request_id, entity_time, got 'order_id'"),
        ({"join": "entity_time"}, "labels.join: entity_time needs entity keys that are model inputs"),
        ({"max_delay": "a week"}, "labels.max_delay: expected a duration like 7d"),
        ({"min_rows": 0}, "labels.min_rows: expected an integer >= 1, got 0"),
        ({"delay": "7d"}, "labels.delay: unknown key"),
    ],
)
def test_labels_errors_name_the_key(spec_dict, labels, expected):
    spec_dict["labels"] = labels
    with pytest.raises(ModelSpecError, match="^include/models/refunds.yaml: " + expected.replace("(", r"\(")):
        _parse(spec_dict)
