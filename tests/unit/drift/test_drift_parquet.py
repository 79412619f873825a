"""Column-chunked drift over Parquet files gives exactly the verdicts of the in-memory engine."""

from __future__ import annotations

import numpy as np
import pandas as pd


def test_chunked_parquet_drift_equals_the_whole_frame_engine(tmp_path):
    from mlops_provider.drift.engine import compute_drift, compute_drift_parquet

    rng = np.random.default_rng(5)
    rows = 3_000

    def frame(shift: float) -> pd.DataFrame:
        data = {f"x{i}": rng.normal(shift * (i % 2), 1.0, rows) for i in range(6)}
        data["code"] = rng.integers(0, 4 if shift == 0 else 5, rows)  # categorical (few integer values)
        data["text"] = [f"id-{v}" for v in rng.integers(0, 10**9, rows)]  # text: skipped by both
        return pd.DataFrame(data)

    reference, current = frame(0.0), frame(0.3)
    reference.to_parquet(tmp_path / "reference.parquet", index=False)
    current.to_parquet(tmp_path / "current.parquet", index=False)

    whole = compute_drift(reference, current)
    chunked = compute_drift_parquet(
        str(tmp_path / "reference.parquet"), str(tmp_path / "current.parquet"), columns_per_chunk=3
    )
    strip = lambda result: [{**vars(c)} for c in result.columns]  # noqa: E731
    assert strip(chunked) == strip(whole)
    assert chunked.skipped_columns == whole.skipped_columns and "text" in chunked.skipped_columns
    assert chunked.number_of_drifted_columns == whole.number_of_drifted_columns >= 3
    assert chunked.dataset_drift == whole.dataset_drift
