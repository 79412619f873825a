"""Typed failures that carry what a user needs to act on them."""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowException, AirflowFailException


class MlopsError(AirflowException):
    """Base class of the bundle's domain failures."""


class SourceDataMissingError(MlopsError):
    """The source data for a data interval does not exist (or is empty)."""


class DataValidationError(MlopsError, AirflowFailException):
    """Data failed validation; ``report`` holds the failed checks with counts, ``report_uri`` the JSON report.

    Fails the task without retries: the same data gives the same verdict until someone fixes it.
    """

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


class SourceDataFormatError(MlopsError, AirflowFailException):
    """A source file cannot be read as declared (corrupt Parquet, wrong CSV delimiter); nothing was written."""


class DriftReferenceMissingError(MlopsError):
    """The champion's training-set snapshot (the drift reference) cannot be found from its MLflow lineage.

    ``model_name``/``version``/``run_id`` name the champion; the message says which tag or artifact is missing.
    """

    def __init__(self, message: str, *, model_name: str, version: str | None = None, run_id: str | None = None) -> None:
        super().__init__(message)
        self.model_name = model_name
        self.version = version
        self.run_id = run_id


class RolloutRolledBackError(RolloutFailedError, AirflowFailException):
    """A rollout failed its readiness wait or analysis and traffic went back to the previous version.

    Fails the task without retries: repeating the same rollout would repeat the same verdict.
    """


class PromotionConflictError(MlopsError, AirflowFailException):
    """Another run is promoting the same model, or ``champion`` moved since the gate compared against it.

    Fails the task without retries: the other run's promotion decides; re-run the gate to compare against the new
    champion. ``holder`` names the run holding the promotion lock, ``expected``/``actual`` the champion versions.
    """

    def __init__(
        self, message: str, *, holder: str | None = None, expected: str | None = None, actual: str | None = None
    ) -> None:
        super().__init__(message)
        self.holder = holder
        self.expected = expected
        self.actual = actual


class UnverifiedPromotionError(MlopsError, AirflowFailException):
    """``champion`` was about to move to a version with no passed rollout analysis recorded; it was not moved.

    Fails the task without retries: it signals a broken invariant (I1), which a retry must not paper over.
    """
