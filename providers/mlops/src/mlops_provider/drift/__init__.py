"""Fast drift engine: Evidently 0.7 ``DataDriftPreset`` default verdicts on NumPy/SciPy, and the drift policy.

Importing this package is cheap; NumPy, SciPy and pandas are imported when a check runs.
"""

from __future__ import annotations

from mlops_provider.drift.engine import ColumnDrift, DriftConfig, DriftResult, compute_drift, infer_column_type

__all__ = ["ColumnDrift", "DriftConfig", "DriftResult", "compute_drift", "infer_column_type"]
