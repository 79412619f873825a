"""The live analysis' arithmetic and settings: Jensen-Shannon, comparisons, query templates, bucket decoding."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from mlops_provider.serving.live_analysis import (
    DEFAULT_METRICS,
    LiveAnalysisConfig,
    MetricTemplate,
    _bins_from_buckets,
    _histogram,
    compare,
    jensen_shannon,
    judge_live_window,
    prometheus_window,
    render_query,
)


def test_jensen_shannon_is_zero_for_equal_shapes_one_for_disjoint_and_symmetric():
    assert jensen_shannon([1, 2, 3], [10, 20, 30]) == pytest.approx(0.0)
    assert jensen_shannon([5, 0], [0, 5]) == pytest.approx(1.0)
    p, q = [30, 50, 20], [10, 40, 50]
    assert jensen_shannon(p, q) == pytest.approx(jensen_shannon(q, p))
    assert 0 < jensen_shannon(p, q) < 1
    assert jensen_shannon([0, 0], [1, 1]) is None  # nothing observed on one side: not measurable


def test_comparisons():
    ratio, difference, divergence = (
        MetricTemplate("r", "q", 1.5, "ratio"),
        MetricTemplate("d", "q", 0.01, "difference"),
        MetricTemplate("j", "q", 0.1, "divergence"),
    )
    assert compare(ratio, 10.0, 20.0) == 2.0
    assert compare(ratio, 0.0, 5.0) == math.inf and compare(ratio, 0.0, 0.0) is None
    assert compare(difference, 0.01, 0.05) == pytest.approx(0.04)
    assert compare(difference, None, 0.05) is None
    # Multiclass: the largest divergence over the classes both versions report.
    stable = {"class=a": [5, 5], "class=b": [10, 0]}
    canary = {"class=a": [5, 5], "class=b": [0, 10]}
    assert compare(divergence, stable, canary) == pytest.approx(1.0)


def test_render_query_fills_placeholders_escapes_values_and_keeps_promql_braces():
    query = render_query(DEFAULT_METRICS[0].query, model="m", version='7"x', window="120s", component="predictor")
    assert 'model_name="m",model_version="7\\"x",component="predictor"' in query
    assert "[120s]" in query and "{model}" not in query
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert prometheus_window(start, start + timedelta(seconds=90.4)) == "90s"
    assert prometheus_window(start, start + timedelta(milliseconds=10)) == "1s"


def test_cumulative_buckets_become_counts_per_bin_per_class():
    result = [
        {"labels": {"le": "0.5", "class": "a"}, "value": 3.0},
        {"labels": {"le": "+Inf", "class": "a"}, "value": 10.0},
        {"labels": {"le": "1.0", "class": "a"}, "value": 8.0},
        {"labels": {"le": "0.5", "class": ""}, "value": 1.0},
        {"labels": {"le": "+Inf", "class": ""}, "value": 4.0},
    ]
    assert _bins_from_buckets(result) == {"class=a": [3.0, 5.0, 2.0], "": [1.0, 3.0]}
    assert _bins_from_buckets([]) is None


def test_log_histogram_uses_the_model_servers_buckets():
    import numpy as np

    counts = _histogram(np.array([0.05, 0.1, 0.15, 0.95, 1.0, float("nan")]))
    assert len(counts) == 11 and counts[0] == 2 and counts[1] == 1 and counts[9] == 2 and sum(counts) == 5
    values = _histogram(np.array([-50.0, 3.0, 2e4]))
    assert len(values) == 14 and sum(values) == 3 and values[-1] == 1


def test_config_from_mapping_validates_and_names_the_bad_setting():
    config = LiveAnalysisConfig.from_dict(
        {"min_requests": 10, "metrics": [{"name": "x", "query": "up", "threshold": 1, "comparison": "ratio"}]}
    )
    assert config.min_requests == 10 and config.metrics[0].comparison == "ratio"
    with pytest.raises(ValueError, match="Unknown live_analysis option"):
        LiveAnalysisConfig.from_dict({"min_request": 10})
    with pytest.raises(ValueError, match="comparison must be one of"):
        MetricTemplate("x", "up", 1.0, "greater")
    with pytest.raises(ValueError, match="lacks"):
        MetricTemplate.from_dict({"name": "x"})
    with pytest.raises(ValueError, match="min_requests must be at least 1"):
        LiveAnalysisConfig(min_requests=0)


def test_window_and_mode_are_checked_before_anything_is_read():
    now = datetime.now(UTC)
    arguments = {"model_name": "m", "stable_version": "1", "candidate_version": "2", "source": "prediction_log"}
    with pytest.raises(ValueError, match="mode must be one of"):
        judge_live_window(mode="blue", start=now - timedelta(minutes=1), end=now, **arguments)
    with pytest.raises(ValueError, match="must end after it starts"):
        judge_live_window(mode="canary", start=now, end=now, **arguments)
    with pytest.raises(ValueError, match="timezone-aware"):
        judge_live_window(mode="canary", start=datetime(2026, 1, 1), end=datetime(2026, 1, 2), **arguments)
