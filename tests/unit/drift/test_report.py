"""The Evidently report shows exactly the verdict's columns and tests, and says when it is on a sample."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlops_provider.drift.check import check_drift, round_share
from mlops_provider.drift.engine import DriftConfig
from mlops_provider.drift.policy import DriftPolicy
from mlops_provider.drift.report import build_drift_report


def _frames(rows: int, seed: int = 5) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    reference = pd.DataFrame(
        {
            "f_num": rng.normal(0, 1, rows),
            "f_cat": rng.integers(0, 3, rows),
            "f_logged": rng.normal(0, 1, rows),
            "label": rng.integers(0, 2, rows),
        }
    )
    current = pd.DataFrame(
        {"f_num": rng.normal(2, 1, rows), "f_cat": rng.integers(0, 3, rows), "label": rng.integers(0, 2, rows)}
    )
    log = pd.DataFrame({"f_logged": rng.normal(0.5, 1, rows), "prediction": rng.uniform(0, 1, rows)})
    return reference, current, log


def _check(reference, current, log):
    return check_drift(
        reference,
        current,
        features=["f_num", "f_cat", "f_logged"],
        config=DriftConfig(),
        policy=DriftPolicy(),
        predictions=log,
        label="label",
    )


def test_report_on_all_rows_has_the_verdicts_columns_tests_and_share():
    reference, current, log = _frames(1500)
    result = _check(reference, current, log)
    report = build_drift_report(result, reference, current, log, sample_rows=10_000, title="Data drift of m v1")

    # The label is checked (target drift) but is no feature: it is not in the report either.
    assert report.columns == result.checked_features == ["f_num", "f_cat", "f_logged"]
    assert report.stattests == {c.column: c.stattest for c in result.features}
    assert not report.sampled
    assert report.drift_share is not None
    assert round_share(report.drift_share) == result.to_payload()["drift_share"]
    assert report.summary()["drift_share"] == result.to_payload()["drift_share"]
    assert "<title>Data drift of m v1</title>" in report.html
    assert "same rows (1500 current, 1500 reference)" in report.html


def test_report_on_a_sample_says_so_and_keeps_the_verdicts_columns_and_tests():
    reference, current, log = _frames(4000)
    result = _check(reference, current, log)
    report = build_drift_report(result, reference, current, log, sample_rows=800)

    assert report.sampled
    assert (report.reference_rows, report.current_rows) == (800, 800)
    # On 800 rows Evidently's defaults would pick hypothesis tests (K-S, chi-square), while the verdict on
    # 4000 rows used distances: the report keeps the verdict's tests.
    assert {c.stattest for c in result.features} <= {"wasserstein", "jensenshannon"}
    assert report.stattests == {c.column: c.stattest for c in result.features}
    note = report.summary()["note"]
    assert note.startswith("The verdict is computed on all 4000 current rows and 4000 reference rows")
    assert "random sample of 800 current and 800 reference rows" in note
    assert note in report.html
