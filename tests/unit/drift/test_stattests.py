"""The fast Wasserstein distance equals SciPy's (as Evidently calls it) bit for bit, on both merge paths.

``merge_sorted`` merges by one sort of tagged values when the lowest mantissa bit is free (float32 and
32-bit integer columns, float64 values with that bit clear) and by sorting each sample and a stable merge
otherwise; each case below names the path it takes, and the score must be the exact float SciPy gives.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import wasserstein_distance

from mlops_provider.drift.stattests import ColumnSample, merge_sorted, wasserstein


def _low_bit_free(values: np.ndarray) -> bool:
    return not np.bitwise_and(values.astype(np.float64).view(np.uint64), 1).any()


def _cases() -> list:
    rng = np.random.default_rng(3)
    normal32 = rng.standard_normal(40_000, dtype=np.float32)
    signed_zeros = np.array([-0.0, 0.0, -1.5, 1.5, -0.0, 2.0, -2.0, 0.0] * 500)
    return [
        # float32 columns: the tagged sort; different sizes, and both CDFs crossing.
        ("float32", normal32[:25_000], normal32[25_000:] * np.float32(1.2) + np.float32(0.1), True),
        # float64 with the low bit in use: sort each sample, then the stable merge.
        ("float64", rng.normal(0, 1, 30_000), rng.normal(0.05, 1.1, 20_000), False),
        # Few distinct values, ties inside and across the samples, negatives: on both paths.
        (
            "ties float32",
            *(np.round(rng.normal(s, 1, k), 1).astype(np.float32) for s, k in [(0, 20_000), (0.2, 9_000)]),
            True,
        ),
        ("ties float64", np.round(rng.normal(0, 1, 20_000), 1), np.round(rng.normal(0.2, 1, 15_000), 1), False),
        # -0.0 and 0.0 are equal values for SciPy; the tag must not separate them from each other.
        ("signed zeros", signed_zeros, np.roll(signed_zeros, 3)[:3_000] * 1.0, True),
        # Integers (a numerical column with more than 10 values), one sample entirely below the other.
        ("integers", rng.integers(0, 50, 12_000), rng.integers(60, 90, 9_000), True),
        ("int64 beyond 2**53", rng.integers(2**60, 2**61, 5_000), rng.integers(2**60, 2**61, 5_000), None),
        ("one value each", np.array([1.0]), np.array([3.0]), True),
    ]


@pytest.mark.parametrize(("reference", "current", "tagged"), [pytest.param(*c[1:], id=c[0]) for c in _cases()])
def test_score_is_scipys_float_on_either_merge_path(reference, current, tagged):
    if tagged is not None:
        assert (_low_bit_free(reference) and _low_bit_free(current)) is tagged  # the case takes the path it names
    sample = ColumnSample(pd.Series(reference), pd.Series(current))
    score, drifted = wasserstein(sample, 0.1)
    # Evidently's _wasserstein_distance_norm, verbatim.
    norm = max(float(np.std(pd.Series(reference))), 0.001)
    expected = wasserstein_distance(pd.Series(reference), pd.Series(current)) / norm
    assert score == expected
    assert drifted == (expected >= 0.1)


@pytest.mark.parametrize(("reference", "current", "tagged"), [pytest.param(*c[1:], id=c[0]) for c in _cases()])
def test_merge_gives_the_sorted_values_and_which_sample_each_came_from(reference, current, tagged):
    values, from_current = merge_sorted(reference, current)
    both = np.concatenate((reference, current)).astype(np.float64)
    assert np.array_equal(values, np.sort(both))
    assert int(from_current.sum()) == current.size
    # At the end of each run of equal values the counts are SciPy's searchsorted(..., 'right') counts.
    run_ends = np.flatnonzero(np.r_[values[1:] != values[:-1], True])
    cur_sorted = np.sort(current.astype(np.float64))
    assert np.array_equal(np.cumsum(from_current)[run_ends], cur_sorted.searchsorted(values[run_ends], "right"))


def test_inputs_are_left_untouched():
    rng = np.random.default_rng(8)
    reference, current = rng.standard_normal(5_000, dtype=np.float32), rng.standard_normal(4_000, dtype=np.float32)
    before = reference.copy(), current.copy()
    merge_sorted(reference, current)
    assert np.array_equal(reference, before[0]) and np.array_equal(current, before[1])


def test_distinct_values_counted_like_pandas_on_large_numerical_columns():
    rng = np.random.default_rng(4)
    reference = pd.Series(np.round(rng.normal(0, 1, 80_000), 2))
    current = pd.Series(np.r_[np.round(rng.normal(0, 1, 40_000), 2), [-0.0, 0.0]])
    sample = ColumnSample(reference, current)
    assert sample.n_unique() == pd.concat([reference, current]).nunique()
    assert sample._merged is not None  # counted on the merge the Wasserstein distance reuses
