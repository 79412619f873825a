"""Batch scoring's pure parts: prediction columns per task, request ids, the backend choice."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from mlops_provider.exceptions import MlopsError
from mlops_provider.operators.batch_scoring import (
    BatchScoringOperator,
    batch_request_id,
    batch_scoring_operator_class,
    prediction_columns,
)


def test_prediction_columns_follow_the_prediction_log_per_task():
    values = prediction_columns(np.array([0.2, 0.9]))
    assert list(values) == ["prediction"] and values["prediction"].tolist() == [0.2, 0.9]
    multiclass = prediction_columns(np.array([[0.1, 0.7, 0.2], [0.6, 0.3, 0.1]]))
    assert list(multiclass) == ["prediction", "prediction_class_0", "prediction_class_1", "prediction_class_2"]
    assert multiclass["prediction"].tolist() == [1, 0], "the arg-max class index, as the model server logs it"
    assert multiclass["prediction_class_1"].tolist() == [0.7, 0.3]


def test_request_ids_are_deterministic_and_name_model_version_day_and_row():
    assert batch_request_id("churn", "7", date(2026, 3, 9), 42) == "batch-churn-v7-20260309-000042"
    assert batch_request_id("churn", "7", date(2026, 3, 9), 42) == batch_request_id("churn", "7", date(2026, 3, 9), 42)


def test_only_the_local_backend_exists_and_others_fail_when_the_dag_is_built():
    assert batch_scoring_operator_class() is batch_scoring_operator_class("local") is BatchScoringOperator
    with pytest.raises(MlopsError, match="batch scoring backend 'dask' is not available; choose one of local"):
        batch_scoring_operator_class("dask")
