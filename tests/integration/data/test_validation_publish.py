"""I3 through Airflow: a failed validation publishes nothing to the validated zone, and nothing is lost.

The validated zone never holds output of a failed validation (not this run's, nor an earlier run's file of
the same day once the current data fails); per partition, validated rows + quarantined rows == raw rows.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from include.data_generator import generate_day
from tests.integration.data.test_ingest_validate import DAY, failure, land, run, zone

pytestmark = pytest.mark.integration


def duplicated(rows: int, dupes: int) -> pd.DataFrame:
    df = generate_day(DAY, rows)
    return pd.concat([df, df.iloc[:dupes]], ignore_index=True)


def test_failed_validation_writes_no_validated_partition():
    dataset = "tx_publish_fail"
    land(dataset, duplicated(200, 30))  # 13% invalid > 5%
    dag_run, states = run(dataset)
    assert states == {"ingest": "success", "validate": "failed"}
    assert failure(dag_run, "validate")["type"] == "DataValidationError"
    assert not zone("validated", dataset).exists()
    raw = pd.read_parquet(zone("raw", dataset))
    quarantine = pd.read_parquet(zone("quarantine", dataset))
    assert len(quarantine) == len(raw) == 230
    assert (quarantine["_failed_checks"] == "transaction_id:unique").sum() == 30
    assert (quarantine["_failed_checks"] == "partition:max_invalid_share").sum() == 200
    report = json.loads(zone("reports/validation", dataset, filename="report.json").read_text())
    assert report["published"] is False and report["validated_uri"] is None
    assert report["valid_rows"] == 0 and report["invalid_rows"] == 230 and report["rows_passing_row_checks"] == 200


def test_failed_revalidation_removes_the_stale_validated_partition():
    dataset = "tx_publish_stale"
    land(dataset, generate_day(DAY, 200))
    _, states = run(dataset)
    assert states["validate"] == "success" and zone("validated", dataset).exists()
    published = zone("validated", dataset).read_bytes()
    # The day's data is re-delivered, now broken: the old validated file no longer describes raw.
    land(dataset, duplicated(200, 30))
    dag_run, states = run(dataset)
    assert states["validate"] == "failed"
    assert not zone("validated", dataset).exists()
    # Unpublished, not destroyed: the removed content stays as its version, no pointer names it any more.
    from mlops_provider.partitions import content_version, current_version, read_partition

    validated = zone("validated", dataset).parent.parent.as_uri()
    assert current_version(validated, DAY) is None
    assert read_partition(validated, DAY, version=content_version(published))[0] == published
    assert len(pd.read_parquet(zone("quarantine", dataset))) == len(pd.read_parquet(zone("raw", dataset))) == 230
    # A fixed source passes and is published again, with an empty quarantine.
    land(dataset, generate_day(DAY, 180))
    _, states = run(dataset)
    assert states["validate"] == "success"
    assert len(pd.read_parquet(zone("validated", dataset))) == 180
    assert len(pd.read_parquet(zone("quarantine", dataset))) == 0


def test_a_dataset_name_that_leaves_its_zone_fails_before_any_io():
    from mlops_provider.exceptions import InvalidNameError
    from mlops_provider.operators.feast import FeastTrainingSetOperator
    from mlops_provider.operators.validation import DataValidationOperator
    from tests.integration.data.test_ingest_validate import data_root

    dag_run, states = run("../../escaped")
    assert states["ingest"] == "failed"
    record = failure(dag_run, "ingest")
    assert record["type"] == "InvalidNameError" and "'../../escaped'" in record["message"]
    assert not (data_root().parent / "escaped").exists() and not (data_root() / "escaped").exists()
    # The other operators that build zone paths from a dataset name refuse it the same way.
    validate = DataValidationOperator(task_id="v", dataset="../x", contract="c.yaml")
    with pytest.raises(InvalidNameError, match="'../x'"):
        validate._zone("validated")
    training_set = FeastTrainingSetOperator(task_id="t", dataset="a/b", feature_service="s_v1", label_column="y")
    with pytest.raises(InvalidNameError, match="'a/b'"):
        training_set._read_validated("a/b", DAY)
