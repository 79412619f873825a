"""Statistical tests of the fast drift engine, numerically identical to Evidently 0.7's implementations.

Each test reproduces the formula of ``evidently.legacy.calculations.stattests`` (same inputs, same
operations in the same order, so the same score bit for bit in the common cases) but works on NumPy
arrays prepared once per column; the Wasserstein distance replaces SciPy's two sorts, merge sort and
two binary searches per value with one sort of the tagged samples (see :func:`merge_sorted`), which is
what makes 3M-row columns cheap.

numpy, scipy and pandas are imported inside the functions: this module is imported by the drift
operator, which DAG files import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

NUMERICAL = "num"
CATEGORICAL = "cat"


@dataclass(frozen=True)
class StatTestSpec:
    """A drift test: its Evidently name, display name, the column types it accepts and its default threshold.

    ``higher_is_drift`` tells how the score compares with the threshold: distances drift when
    ``score >= threshold``, p-values when ``score < threshold`` (``<=`` for K-S, as in Evidently).
    """

    name: str
    display_name: str
    column_types: tuple[str, ...]
    default_threshold: float
    higher_is_drift: bool


KS = StatTestSpec("ks", "K-S p_value", (NUMERICAL,), 0.05, False)
CHISQUARE = StatTestSpec("chisquare", "chi-square p_value", (CATEGORICAL,), 0.05, False)
Z = StatTestSpec("z", "Z-test p_value", (CATEGORICAL,), 0.05, False)
WASSERSTEIN = StatTestSpec("wasserstein", "Wasserstein distance (normed)", (NUMERICAL,), 0.1, True)
JENSENSHANNON = StatTestSpec("jensenshannon", "Jensen-Shannon distance", (CATEGORICAL, NUMERICAL), 0.1, True)
PSI = StatTestSpec("psi", "PSI", (CATEGORICAL, NUMERICAL), 0.1, True)

STATTESTS: dict[str, StatTestSpec] = {t.name: t for t in (KS, CHISQUARE, Z, WASSERSTEIN, JENSENSHANNON, PSI)}

# Values per block of the Wasserstein CDF arithmetic: the block's arrays stay in a core's L2 cache.
_BLOCK = 2**14


@dataclass
class ColumnSample:
    """One column of the reference and current data, cleaned the way Evidently cleans it (no NaN, no inf).

    ``reference``/``current`` are pandas Series; the merged sorted values of numerical columns are
    computed on demand and cached, because both the default test selection and the Wasserstein
    distance need them.
    """

    reference: pd.Series
    current: pd.Series
    _merged: tuple[np.ndarray, np.ndarray] | None = None

    def merged(self) -> tuple[np.ndarray, np.ndarray]:
        """Both samples sorted together as float64: (values, True where the value came from ``current``)."""
        if self._merged is None:
            self._merged = merge_sorted(self.reference.to_numpy(), self.current.to_numpy())
        return self._merged

    def n_unique(self) -> int:
        """Distinct values over both samples, as ``pd.concat([ref, cur]).nunique()`` counts them."""
        import numpy as np
        import pandas as pd

        if self._merged is None and len(self.reference) + len(self.current) <= 100_000:
            return int(pd.concat([self.reference, self.current]).nunique())
        if pd.api.types.is_numeric_dtype(self.reference) and pd.api.types.is_numeric_dtype(self.current):
            values, _ = self.merged()
            return int(np.count_nonzero(values[1:] != values[:-1])) + 1
        return int(pd.concat([self.reference, self.current]).nunique())


def merge_sorted(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort ``reference`` and ``current`` together as float64; return (values, True where from ``current``).

    The values are those SciPy sorts (both samples cast to float64). Among equal values the order of
    the two samples is unspecified: the Wasserstein terms there are multiplied by a zero width.

    When every value leaves the lowest mantissa bit free (always for float32 and 32-bit integer
    columns), the current values are tagged in that bit and one sort of the concatenation does the
    merge: setting the bit moves a value less than half the gap to the next free-bit value, so the
    order of distinct values is kept. Otherwise each sample is sorted and a stable sort merges the
    two sorted runs (a merge in linear time).
    """
    import numpy as np

    n = reference.size
    values = np.empty(n + current.size, dtype=np.float64)
    values[:n] = reference
    values[n:] = current
    bits = values.view(np.uint64)
    low_bit = np.uint64(1)
    if (reference.dtype.itemsize <= 4 and current.dtype.itemsize <= 4) or not np.bitwise_and(bits, low_bit).any():
        bits[n:] |= low_bit
        values.sort()
        from_current = np.empty(values.size, dtype=bool)
        np.bitwise_and(bits, low_bit, out=from_current, casting="unsafe")
        bits &= ~low_bit
        return values, from_current
    values[:n].sort()
    values[n:].sort()
    order = np.argsort(values, kind="stable")
    return values[order], order >= n


def ks(sample: ColumnSample, threshold: float) -> tuple[float, bool]:
    """Two-sample Kolmogorov-Smirnov test (``scipy.stats.ks_2samp``); drift when ``p <= threshold``."""
    from scipy.stats import ks_2samp

    p_value = float(ks_2samp(sample.reference.to_numpy(), sample.current.to_numpy())[1])
    return p_value, p_value <= threshold


def _keys(sample: ColumnSample) -> list:
    # Same key order as Evidently's get_unique_not_nan_values_list_from_series (a set union), so sums
    # run in the same order.
    return list(set(sample.reference.dropna().unique()) | set(sample.current.dropna().unique()))


def chisquare(sample: ColumnSample, threshold: float) -> tuple[float, bool]:
    """Chi-square goodness of fit of current counts against reference proportions; drift when ``p < threshold``."""
    from scipy.stats import chisquare as scipy_chisquare

    ref, cur = sample.reference, sample.current
    keys = _keys(sample)
    ref_counts = {**dict.fromkeys(keys, 0), **dict(ref.value_counts())}
    cur_counts = {**dict.fromkeys(keys, 0), **dict(cur.value_counts())}
    k_norm = cur.shape[0] / ref.shape[0]
    f_exp = [ref_counts[key] * k_norm for key in keys]
    f_obs = [cur_counts[key] for key in keys]
    p_value = float(scipy_chisquare(f_obs, f_exp)[1])
    return p_value, p_value < threshold


def z(sample: ColumnSample, threshold: float) -> tuple[float, bool]:
    """Two-proportion Z-test on the share of the smallest value; drift when ``p < threshold``."""
    import numpy as np
    from scipy.stats import norm

    ref, cur = sample.reference, sample.current
    if ref.nunique() == 1 and cur.nunique() == 1 and ref.unique()[0] == cur.unique()[0]:
        return 1.0, 1 < threshold
    first = sorted(_keys(sample))[0]
    n1, n2 = len(ref), len(cur)
    p1 = float(int((ref != first).sum())) / n1
    p2 = float(int((cur != first).sum())) / n2
    pooled = float(p1 * n1 + p2 * n2) / (n1 + n2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z_stat = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    p_value = float(2 * (1 - norm.cdf(np.abs(z_stat))))
    return p_value, p_value < threshold


def wasserstein(sample: ColumnSample, threshold: float) -> tuple[float, bool]:
    """First Wasserstein distance normed by the reference's standard deviation; drift when ``>= threshold``.

    Same integral as ``scipy.stats.wasserstein_distance``, term for term: the CDF counts are read off
    one merge of the samples instead of two binary searches. Where two merged values are equal the
    interval width is 0, so only the counts at the end of each run of ties matter, and there the
    cumulative counts equal ``searchsorted(..., 'right')``: the terms, and their sum, are the same.
    """
    import numpy as np

    values, from_current = sample.merged()
    n_reference, n_current = len(sample.reference), len(sample.current)
    # scipy's |u_cdf - v_cdf| on all but the last merged value, a cache-sized block at a time. The counts are
    # integers held exactly in float64, divided as scipy divides its integer counts: the same float64 values,
    # without array-sized temporaries. Each block counts in int32 (NumPy converts int32, not int64, to float64
    # with SIMD) and adds the count carried from the blocks before it.
    cdf_gap = np.empty(values.size - 1)
    steps = np.arange(1, _BLOCK + 1, dtype=np.float64)
    running = np.empty(_BLOCK, dtype=np.int32)
    counts = np.empty(_BLOCK)
    flags = from_current.view(np.uint8)
    counted = 0.0  # current values before the block
    for lo in range(0, cdf_gap.size, _BLOCK):
        size = min(_BLOCK, cdf_gap.size - lo)
        block_counts, gap = counts[:size], cdf_gap[lo : lo + size]
        np.copyto(block_counts, np.cumsum(flags[lo : lo + size], dtype=np.int32, out=running[:size]))
        block_counts += counted
        counted = float(block_counts[-1])
        np.divide(block_counts, n_current, out=gap)
        np.subtract(steps[:size], block_counts, out=block_counts)
        block_counts += lo  # now the reference counts
        np.divide(block_counts, n_reference, out=block_counts)
        np.subtract(block_counts, gap, out=gap)
        np.abs(gap, out=gap)
    distance = float(np.vecdot(cdf_gap, np.diff(values)))
    # np.std of the Series (pandas' nanstd, ddof=0, in the column's dtype), as Evidently computes it.
    norm = max(float(np.std(sample.reference)), 0.001)
    score = distance / norm
    return score, score >= threshold


def _binned(sample: ColumnSample, column_type: str, n_bins: int, fill_zeroes: bool) -> tuple[np.ndarray, np.ndarray]:
    """Evidently's ``get_binned_data``: Sturges histogram for many-valued numbers, else value shares."""
    import numpy as np
    import pandas as pd

    ref, cur = sample.reference, sample.current
    if column_type == NUMERICAL and ref.nunique() > 20:
        combined = np.asarray(pd.concat([ref, cur], axis=0).values)
        bins = np.histogram_bin_edges(combined, bins="sturges")
        ref_pct = np.histogram(ref, bins)[0] / len(ref)
        cur_pct = np.histogram(cur, bins)[0] / len(cur)
    else:
        keys = _keys(sample)
        ref_counts = {**dict.fromkeys(keys, 0), **dict(ref.value_counts())}
        cur_counts = {**dict.fromkeys(keys, 0), **dict(cur.value_counts())}
        ref_pct = np.array([ref_counts[key] / len(ref) for key in keys])
        cur_pct = np.array([cur_counts[key] / len(cur) for key in keys])
    if fill_zeroes:
        for pct in (ref_pct, cur_pct):
            smallest = min(pct[pct != 0])
            np.place(pct, pct == 0, smallest / 10**6 if smallest <= 0.0001 else 0.0001)
    return ref_pct, cur_pct


def jensenshannon(sample: ColumnSample, threshold: float, column_type: str) -> tuple[float, bool]:
    """Jensen-Shannon distance of the binned distributions (natural log); drift when ``>= threshold``."""
    from scipy.spatial import distance

    ref_pct, cur_pct = _binned(sample, column_type, 30, False)
    score = float(distance.jensenshannon(ref_pct, cur_pct, None))
    return score, score >= threshold


def psi(sample: ColumnSample, threshold: float, column_type: str) -> tuple[float, bool]:
    """Population Stability Index of the binned distributions; drift when ``>= threshold``."""
    import numpy as np

    ref_pct, cur_pct = _binned(sample, column_type, 30, True)
    score = float(np.sum((ref_pct - cur_pct) * np.log(ref_pct / cur_pct)))
    return score, score >= threshold


def run_stattest(name: str, sample: ColumnSample, column_type: str, threshold: float) -> tuple[float, bool]:
    """Run the test called ``name`` on ``sample``; return ``(score, drifted)``."""
    if name == "ks":
        return ks(sample, threshold)
    if name == "chisquare":
        return chisquare(sample, threshold)
    if name == "z":
        return z(sample, threshold)
    if name == "wasserstein":
        return wasserstein(sample, threshold)
    if name == "jensenshannon":
        return jensenshannon(sample, threshold, column_type)
    if name == "psi":
        return psi(sample, threshold, column_type)
    raise ValueError(f"Unknown drift test {name!r}; use one of {', '.join(STATTESTS)}.")
