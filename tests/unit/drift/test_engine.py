"""The fast drift engine gives Evidently 0.7 DataDriftPreset's per-column verdicts (and scores) exactly.

Each dataset is run through both ``Report([DataDriftPreset()])`` and ``compute_drift``; the datasets
cover every branch of Evidently's default test selection (small/large reference, numerical with
2 / 3-5 / many values, categorical with 2 / many values, ints inferred as categorical, bools), with
and without drift, with NaN and inf, and with per-column overrides.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
import pytest

from mlops_provider.drift import DriftConfig, compute_drift
from mlops_provider.drift.policy import DriftPolicy


def evidently_result(reference: pd.DataFrame, current: pd.DataFrame, **preset_kwargs):
    """Per column (test display name, score, drifted), and (share, dataset drift) from Evidently's preset."""
    from evidently import Report
    from evidently.presets import DataDriftPreset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snapshot = Report([DataDriftPreset(**preset_kwargs)], include_tests=True).run(current, reference).dict()
    columns, share, dataset_drift = {}, None, None
    for metric in snapshot["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            columns[config["column"]] = [config["method"], float(metric["value"])]
        else:
            share = metric["value"]["share"]
    for test in snapshot["tests"]:
        params = test["metric_config"]["params"]
        if params["type"].endswith("ValueDrift"):
            columns[params["column"]].append(test["status"] == "FAIL")
        else:
            dataset_drift = test["status"] == "FAIL"
    return {k: tuple(v) for k, v in columns.items()}, share, dataset_drift


def fast_result(reference, current, config=None):
    result = compute_drift(reference, current, config=config)
    columns = {c.column: (c.stattest_display_name, c.score, c.drift_detected, c.stattest) for c in result.columns}
    return columns, result


def frames(n_ref: int, n_cur: int, drift: bool, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Mixed columns; with ``drift`` every column's distribution moves in ``current``."""
    rng = np.random.default_rng(seed)

    def make(n: int, moved: bool) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "amount": rng.lognormal(3 + (0.4 if moved else 0), 1, n),
                "score": rng.normal(0.5 if moved else 0, 1, n),
                "hour": rng.integers(0, 24 if not moved else 30, n),  # int, > 10 values: numerical
                "four_levels": rng.choice([0.0, 1.0, 2.0, 3.0], n, p=[0.25] * 4 if moved else [0.4, 0.3, 0.2, 0.1]),
                "two_levels": rng.choice([0.0, 1.0], n, p=[0.3, 0.7] if moved else [0.5, 0.5]),
                "channel": rng.choice(["online", "pos", "atm"], n, p=[0.6, 0.2, 0.2] if moved else [0.4, 0.4, 0.2]),
                "domestic": rng.choice(["yes", "no"], n, p=[0.65, 0.35] if moved else [0.8, 0.2]),
                "card_present": rng.random(n) < (0.55 if moved else 0.3),
                "weekday": rng.integers(0, 7, n) if not moved else rng.choice(7, n, p=[0.4] + [0.1] * 6),
            }
        )

    reference, current = make(n_ref, False), make(n_cur, drift)
    # NaN and inf are dropped per column first (both present, so Evidently's own code paths agree).
    reference.loc[reference.index[:4], "score"] = np.nan
    reference.loc[reference.index[4:6], "score"] = np.inf
    current.loc[current.index[:3], "amount"] = np.nan
    current.loc[current.index[3:5], "amount"] = -np.inf
    return reference, current


CASES = [
    pytest.param(300, 250, False, 1, id="small-undrifted"),
    pytest.param(400, 300, True, 2, id="small-drifted"),
    # 1004 rows minus 4 NaN and 2 inf = 998 clean reference rows in "score": still the small-sample tests.
    pytest.param(1004, 600, True, 3, id="boundary-1000-clean-rows"),
    pytest.param(4000, 3000, False, 4, id="large-undrifted"),
    pytest.param(5000, 2500, True, 5, id="large-drifted"),
    pytest.param(3000, 200, True, 6, id="large-reference-small-current"),
]


@pytest.mark.parametrize(("n_ref", "n_cur", "drift", "seed"), CASES)
def test_verdicts_and_scores_identical_to_evidently(n_ref, n_cur, drift, seed):
    reference, current = frames(n_ref, n_cur, drift, seed)
    expected, share, dataset_drift = evidently_result(reference, current)
    actual, result = fast_result(reference, current)
    assert actual.keys() == expected.keys()
    for column, (method, score, drifted) in expected.items():
        assert actual[column][0] == method, column
        assert actual[column][2] == drifted, column
        assert actual[column][1] == pytest.approx(score, rel=1e-12, abs=1e-15), column
    assert result.share_of_drifted_columns == pytest.approx(share)
    assert result.dataset_drift == dataset_drift
    if drift:
        assert result.number_of_drifted_columns > 0
    else:
        assert result.number_of_drifted_columns < result.number_of_columns / 2


def test_every_default_test_is_exercised():
    used = set()
    for n_ref, n_cur, drift, seed in [(300, 250, False, 1), (5000, 2500, True, 5)]:
        reference, current = frames(n_ref, n_cur, drift, seed)
        used |= {c.stattest for c in compute_drift(reference, current).columns}
    assert used == {"ks", "chisquare", "z", "wasserstein", "jensenshannon"}


def test_column_types_follow_evidently_inference():
    reference, current = frames(300, 250, False, 1)
    by_column = compute_drift(reference, current).by_column()
    assert by_column["hour"].column_type == "num"  # int with > 10 values
    assert by_column["weekday"].column_type == "cat"  # int with <= 10 values
    assert by_column["card_present"].column_type == "cat"
    assert by_column["two_levels"].column_type == "num"
    assert by_column["two_levels"].stattest == "z"  # numerical, 2 values, small sample
    assert by_column["four_levels"].stattest == "chisquare"


def test_per_column_overrides_match_evidently():
    reference, current = frames(3000, 2000, True, 7)
    overrides = {
        "per_column_method": {"amount": "psi", "score": "ks", "channel": "chisquare"},
        "per_column_threshold": {"amount": 0.2, "score": 0.01},
        "cat_threshold": 0.2,
        "drift_share": 0.3,
    }
    expected, share, dataset_drift = evidently_result(reference, current, **overrides)
    actual, result = fast_result(reference, current, DriftConfig.from_dict(overrides))
    for column, (method, score, drifted) in expected.items():
        # Evidently names a configured test by the name it was given, a default one by its display name.
        assert method in (actual[column][0], actual[column][3]), column
        assert actual[column][2] == drifted, column
        assert actual[column][1] == pytest.approx(score, rel=1e-12, abs=1e-15), column
    assert result.by_column()["amount"].threshold == 0.2
    assert result.by_column()["channel"].stattest == "chisquare"
    assert result.share_of_drifted_columns == pytest.approx(share)
    assert result.dataset_drift == dataset_drift


def test_text_and_unknown_columns_are_reported_as_skipped():
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"x": rng.normal(size=50), "txn_id": [f"t{i}" for i in range(50)]})
    current = pd.DataFrame({"x": rng.normal(size=50), "txn_id": [f"u{i}" for i in range(50)]})
    current["ts"] = pd.Timestamp("2026-01-01")
    reference["ts"] = pd.Timestamp("2026-01-01")
    result = compute_drift(reference, current)
    assert [c.column for c in result.columns] == ["x"]
    assert set(result.skipped_columns) == {"txn_id", "ts"}
    assert "text" in result.skipped_columns["txn_id"]


def test_bad_configuration_is_refused_with_the_offending_key():
    with pytest.raises(ValueError, match="per_column_method\\['amount'\\]='kolmogorov'"):
        DriftConfig.from_dict({"per_column_method": {"amount": "kolmogorov"}})
    with pytest.raises(ValueError, match="Unknown drift config keys \\['treshold'\\]"):
        DriftConfig.from_dict({"treshold": 0.1})
    reference, current = frames(300, 250, False, 1)
    with pytest.raises(ValueError, match="does not apply to cat column 'channel'"):
        compute_drift(reference, current, config=DriftConfig(per_column_method={"channel": "wasserstein"}))
    with pytest.raises(ValueError, match="missing"):
        compute_drift(reference, current, columns=["nope"])


def test_empty_column_after_cleaning_names_the_column():
    reference = pd.DataFrame({"x": [np.nan] * 10})
    current = pd.DataFrame({"x": np.arange(10.0)})
    with pytest.raises(ValueError, match="Column 'x' has no values .* reference"):
        compute_drift(reference, current)


def test_one_million_rows_by_twenty_columns_in_under_ten_seconds():
    rng = np.random.default_rng(11)
    reference = pd.DataFrame({f"f{i}": rng.normal(0, 1, 1_000_000) for i in range(20)})
    current = pd.DataFrame({f"f{i}": rng.normal(0.2 * (i % 2), 1, 1_000_000) for i in range(20)})
    started = time.perf_counter()
    result = compute_drift(reference, current)
    elapsed = time.perf_counter() - started
    assert elapsed <= 10, f"drift decision took {elapsed:.1f} s"
    assert {c.stattest for c in result.columns} == {"wasserstein"}
    assert result.drifted_columns == [f"f{i}" for i in range(20) if i % 2]


def test_policy_reasons():
    policy = DriftPolicy.from_dict(
        {
            "drift_share": 0.5,
            "critical_features": ["amount"],
            "max_performance_drop": 0.05,
            "prediction_drift_triggers": True,
        }
    )
    assert policy.evaluate(drift_share=0.1, drifted_features=["hour"]) == []
    assert policy.evaluate(drift_share=0.6, drifted_features=["hour"]) == ["share of drifted features 0.60 >= 0.50"]
    assert policy.evaluate(drift_share=0.1, drifted_features=["amount"]) == ["critical features drifted: amount"]
    assert policy.evaluate(
        drift_share=0.0, drifted_features=[], performance_drop=0.08, performance_metric="roc_auc"
    ) == ["roc_auc dropped by 0.0800 > 0.0500"]
    assert policy.evaluate(drift_share=0.0, drifted_features=[], prediction_drifted=True) == [
        "model predictions drifted"
    ]
    with pytest.raises(ValueError, match="Unknown drift policy keys"):
        DriftPolicy.from_dict({"critical_feature": ["amount"]})
