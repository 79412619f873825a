"""The Evidently HTML report of a drift check, built to show the verdict's own columns and tests.

The verdict (:mod:`mlops_provider.drift.check`) is computed on every row; Evidently needs about a minute
and a half per million rows, so the report is built on a random sample of at most ``sample_rows`` rows
per side (fixed seed: reruns give the same report). To keep the two comparable the report gets exactly
the verdict's columns, each with the verdict's column type, test and threshold; what can still differ
is the scores of a sample, and the report says so in a banner (and :class:`DriftReport` carries the
report's own share so the summary can state both).
"""

from __future__ import annotations

import html as html_lib
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from mlops_provider.drift.stattests import NUMERICAL

if TYPE_CHECKING:
    import pandas as pd

    from mlops_provider.drift.check import DriftCheckResult


@dataclass(frozen=True)
class DriftReport:
    """An Evidently report and what it was computed on."""

    html: str
    #: The columns Evidently tested, read back from its result.
    columns: list[str]
    #: The test Evidently ran on each column, read back from its result.
    stattests: dict[str, str]
    reference_rows: int
    current_rows: int
    verdict_reference_rows: int
    verdict_current_rows: int
    drift_share: float | None

    @property
    def sampled(self) -> bool:
        """Whether the report saw fewer rows than the verdict on either side."""
        return self.reference_rows < self.verdict_reference_rows or self.current_rows < self.verdict_current_rows

    def note(self) -> str:
        """One sentence a person reads to know how the report relates to the verdict."""
        if not self.sampled:
            return (
                f"The report and the verdict are computed on the same rows ({self.current_rows} current, "
                f"{self.reference_rows} reference) with the same columns and tests."
            )
        return (
            f"The verdict is computed on all {self.verdict_current_rows} current rows and "
            f"{self.verdict_reference_rows} reference rows; this report on a random sample of "
            f"{self.current_rows} current and {self.reference_rows} reference rows, with the same columns and "
            "tests, so its scores (and drifted columns near a threshold) can differ slightly."
        )

    def summary(self) -> dict[str, Any]:
        """The report part of the JSON summary."""
        from mlops_provider.drift.check import round_share

        return {
            "columns": self.columns,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "sampled": self.sampled,
            "drift_share": round_share(self.drift_share) if self.drift_share is not None else None,
            "note": self.note(),
        }


def _sample(frame: pd.DataFrame, rows: int) -> pd.DataFrame:
    sampled = frame.sample(n=rows, random_state=0) if len(frame) > rows else frame
    return sampled.reset_index(drop=True)


def report_frames(
    result: DriftCheckResult,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    predictions: pd.DataFrame | None,
    *,
    sample_rows: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return the (reference, current) rows the report shows: the verdict's columns, sampled.

    Features checked on the request log are taken from it, side by side with the ones checked on the
    current window, on the same number of sampled rows so no column is padded with missing values.
    """
    import pandas as pd

    in_current, in_log = result.sources.current, result.sources.prediction_log
    sizes = [len(current)] if in_current else []
    if in_log and predictions is not None:
        sizes.append(len(predictions))
    rows = min([sample_rows, *sizes])
    parts = []
    if in_current:
        parts.append(_sample(current[in_current], rows))
    if in_log and predictions is not None:
        parts.append(_sample(predictions[in_log], rows))
    current_rows = pd.concat(parts, axis=1) if len(parts) > 1 else parts[0]
    reference_rows = _sample(reference[result.checked_features], sample_rows)
    return reference_rows, current_rows


def build_drift_report(
    result: DriftCheckResult,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    predictions: pd.DataFrame | None = None,
    *,
    sample_rows: int,
    title: str = "Data drift",
) -> DriftReport:
    """Build Evidently's ``DataDriftPreset`` report for ``result``'s columns, tests and thresholds.

    :param result: the verdict the report illustrates.
    :param reference: the reference rows of the check.
    :param current: the current window's rows of the check.
    :param predictions: the request log, when some features were checked on it.
    :param sample_rows: the most rows per side the report is computed on.
    :param title: the report's heading.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    reference_rows, current_rows = report_frames(result, reference, current, predictions, sample_rows=sample_rows)
    columns = result.checked_features
    numerical = [c.column for c in result.features if c.column_type == NUMERICAL]
    categorical = [c.column for c in result.features if c.column_type != NUMERICAL]
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    # Pin each column's test and threshold to the verdict's: Evidently's default choice depends on the
    # number of rows, which the sample changes.
    preset = DataDriftPreset(
        columns=columns,
        drift_share=result.config.drift_share,
        per_column_method={c.column: c.stattest for c in result.features},
        per_column_threshold={c.column: c.threshold for c in result.features},
    )
    snapshot = Report([preset], include_tests=True).run(
        Dataset.from_pandas(current_rows, data_definition=definition),
        Dataset.from_pandas(reference_rows, data_definition=definition),
    )
    computed = snapshot.dict()
    stattests = _report_stattests(computed)
    report = DriftReport(
        html="",
        columns=list(stattests),
        stattests=stattests,
        reference_rows=len(reference_rows),
        current_rows=len(current_rows),
        verdict_reference_rows=result.reference_rows,
        verdict_current_rows=_verdict_current_rows(result),
        drift_share=_report_share(computed),
    )
    page = _with_banner(snapshot.get_html_str(as_iframe=False), title=title, note=report.note())
    return replace(report, html=page)


def _verdict_current_rows(result: DriftCheckResult) -> int:
    """Rows the verdict's features were checked on (the request log's when all come from it)."""
    return result.current_rows if result.sources.current else result.prediction_rows


def _report_stattests(snapshot: dict[str, Any]) -> dict[str, str]:
    """Column -> test of every column Evidently tested (one ``ValueDrift`` metric each), in report order."""
    return {
        str(metric["config"]["column"]): str(metric["config"].get("method"))
        for metric in snapshot.get("metrics", [])
        if str(metric.get("metric_name", "")).startswith("ValueDrift") and "column" in (metric.get("config") or {})
    }


def _report_share(snapshot: dict[str, Any]) -> float | None:
    """The report's own share of drifted columns (Evidently's ``DriftedColumnsCount``)."""
    for metric in snapshot.get("metrics", []):
        if str(metric.get("metric_name", "")).startswith("DriftedColumnsCount"):
            value = metric.get("value") or {}
            share = value.get("share") if isinstance(value, dict) else None
            return float(share) if share is not None else None
    return None


def _with_banner(page: str, *, title: str, note: str) -> str:
    """Put a title and the verdict-vs-report note at the top of Evidently's page (it renders neither)."""
    banner = (
        '<div style="font-family:sans-serif;padding:12px 16px;border-bottom:1px solid #ddd;background:#fafafa">'
        f"<h2 style='margin:0 0 4px'>{html_lib.escape(title)}</h2>"
        f"<p style='margin:0' id='mlops-drift-note'>{html_lib.escape(note)}</p></div>"
    )
    head = page.find("<head>")
    if head >= 0:
        page = f"{page[: head + 6]}<title>{html_lib.escape(title)}</title>{page[head + 6 :]}"
    body = page.find("<body>")
    if body < 0:
        return banner + page
    return f"{page[: body + 6]}{banner}{page[body + 6 :]}"
