"""Typed failures that carry what a user needs to act on them."""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowException, AirflowFailException


class MlopsError(AirflowException):
    """Base class of the bundle's domain failures.

    Retried (per the task's ``retries``) unless a subclass is also an ``AirflowFailException``: each
    subclass's docstring says which it is and why.
    """


class InvalidNameError(MlopsError, AirflowFailException):
    """A user-supplied name (dataset, model, zone) is not a safe path segment; the message names the value.

    Not retried: the same name fails the same check. Names must match ``^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$``
    (no ``/``, no ``..``), so no name can reach outside its zone.
    """


class FeatureDefinitionError(MlopsError, AirflowFailException):
    """A feature view's aggregate tags are incomplete or invalid; the message names the view and field.

    Not retried: the definitions in the feature repository decide, and they do not change between tries.
    """


class SourceDataMissingError(MlopsError):
    """The source data for a data interval does not exist (or is empty); nothing was written.

    Retried: an upstream export may still be on its way, so a later try can find it.
    """


class DataValidationError(MlopsError, AirflowFailException):
    """Data failed validation; ``report`` holds the failed checks with counts, ``report_uri`` the JSON report.

    Not retried: the same data gives the same verdict until someone fixes it. The failed partitions
    published nothing to the validated zone (invariant I3).
    """

    def __init__(self, message: str, *, report: dict | None = None, report_uri: str | None = None) -> None:
        super().__init__(message)
        self.report = report or {}
        self.report_uri = report_uri


class SchemaMismatchError(DataValidationError):
    """Columns are missing, renamed, or of the wrong type; nothing was written.

    Not retried: the schema of the same data does not change between tries.
    """


class TrainingFailedError(MlopsError):
    """A training job failed; the message names the backend, the job and the reason it reported.

    Retried: pods are evicted and jobs preempted; a retry reuses the run's try-independent idempotency
    key, so it cannot register a second version (invariant I2).
    """


class PromotionRejectedError(MlopsError, AirflowFailException):
    """The evaluation gate refused to promote a model version; ``reasons`` lists every failed criterion.

    Not retried: the same candidate scored on the same holdout gets the same verdict.
    """

    def __init__(self, message: str, *, reasons: list[str] | None = None) -> None:
        super().__init__(message)
        self.reasons = reasons or []


class GateConfigurationError(MlopsError, AirflowFailException):
    """The evaluation gate's criteria do not fit the model or its data; nothing was decided.

    Not retried: the same criteria meet the same data and model. Raised for a configured segment column
    that the evaluation window lacks (``column``, ``available``) and for a criterion that names a metric of
    another task (``metric``, ``task``, ``available``).
    """

    def __init__(
        self,
        message: str,
        *,
        column: str | None = None,
        metric: str | None = None,
        task: str | None = None,
        available: list[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.column = column
        self.metric = metric
        self.task = task
        self.available = available or []


class RolloutFailedError(MlopsError):
    """A rollout did not become healthy or failed its analysis; traffic was returned to the previous revision.

    Retried: readiness can fail for transient reasons (image pulls, scheduling); the retry recovers the
    rollout's state from the system of record, not from XCom. When the verdict is final the subclass
    :class:`RolloutRolledBackError` is raised instead.
    """

    def __init__(self, message: str, *, reason: str | None = None, rolled_back: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.rolled_back = rolled_back


class SourceDataFormatError(MlopsError, AirflowFailException):
    """A source file cannot be read as declared (corrupt Parquet, wrong CSV delimiter); nothing was written.

    Not retried: the same bytes fail the same way until the source or the settings change.
    """


class DriftReferenceMissingError(MlopsError, AirflowFailException):
    """The champion's training-set snapshot (the drift reference) cannot be found from its MLflow lineage.

    ``model_name``/``version``/``run_id`` name the champion; the message says which tag or artifact is missing.

    Not retried: a missing lineage tag or a deleted training set does not come back by itself.
    """

    def __init__(self, message: str, *, model_name: str, version: str | None = None, run_id: str | None = None) -> None:
        super().__init__(message)
        self.model_name = model_name
        self.version = version
        self.run_id = run_id


class RolloutRolledBackError(RolloutFailedError, AirflowFailException):
    """A rollout failed its readiness wait or analysis and traffic went back to the previous version.

    Not retried: repeating the same rollout would repeat the same verdict.
    """


class PromotionConflictError(MlopsError, AirflowFailException):
    """Another run is promoting the same model, or ``champion`` moved since the gate compared against it.

    Not retried: the other run's promotion decides; re-run the gate to compare against the new
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

    Not retried: it signals a broken invariant (I1), which a retry must not paper over.
    """


class ModelSpecError(MlopsError, AirflowFailException):
    """A model spec (``<folder>/<model>.yaml``) is invalid; the message names the file, the key and what was expected.

    ``path`` is the spec file, ``key`` the dotted key (``features.aggregates[1].window``). Raised when the spec is
    read, which is at DAG-parse time, so the loader's DAG file shows it as an import error.

    Not retried: the same file fails the same check until someone edits it.
    """

    def __init__(self, message: str, *, path: str = "", key: str = "") -> None:
        super().__init__(message)
        self.path = path
        self.key = key


class LabelJoinError(MlopsError, AirflowFailException):
    """Delayed labels cannot be joined to the prediction log as configured (a key or the label column is missing).

    ``missing`` lists the columns that are missing and ``where`` the frame that lacks them (the labels, the log).

    Not retried: the same files lack the same columns until the labels' export or the join configuration changes.
    """

    def __init__(self, message: str, *, missing: list[str], where: str) -> None:
        super().__init__(message)
        self.missing = missing
        self.where = where


class PartitionVersionMissingError(MlopsError, AirflowFailException):
    """A recorded version of a data partition no longer exists (retention deleted it, or someone did).

    Not retried: a deleted version does not come back. The message names the partition, the version and the
    retention setting (``[mlops] partition_versions_retained``).
    """


class ReproductionMismatchError(MlopsError, AirflowFailException):
    """A reproduction rebuilt a training set or a model that differs from the recorded one; the message says how.

    Not retried: the same recorded inputs rebuild the same result.
    """
