"""Typed failures that carry what a user needs to act on them."""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowException


class MlopsError(AirflowException):
    """Base class of the bundle's domain failures."""


class SourceDataMissingError(MlopsError):
    """The source data for a data interval does not exist (or is empty)."""


class DataValidationError(MlopsError):
    """Data failed validation; ``report`` holds the failed checks with counts, ``report_uri`` the JSON report."""

    def __init__(self, message: str, *, report: dict | None = None, report_uri: str | None = None) -> None:
        super().__init__(message)
        self.report = report or {}
        self.report_uri = report_uri


class SchemaMismatchError(DataValidationError):
    """Columns are missing, renamed, or of the wrong type; nothing was written."""


class TrainingFailedError(MlopsError):
    """A training job failed; the message names the backend, the job and the reason it reported."""


class PromotionRejectedError(MlopsError):
    """The evaluation gate refused to promote a model version; ``reasons`` lists every failed criterion."""

    def __init__(self, message: str, *, reasons: list[str] | None = None) -> None:
        super().__init__(message)
        self.reasons = reasons or []


class RolloutFailedError(MlopsError):
    """A rollout did not become healthy or failed its analysis; traffic was returned to the previous revision."""

    def __init__(self, message: str, *, reason: str | None = None, rolled_back: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.rolled_back = rolled_back
