"""Each domain failure says whether a retry can change its verdict, and non-retryable ones skip the retries."""

from __future__ import annotations

import inspect

import pytest
from airflow.sdk.exceptions import AirflowFailException

from mlops_provider import exceptions

#: Retrying can change the outcome: data may arrive, a pod may be rescheduled, a rollout may become ready.
RETRYABLE = {"MlopsError", "SourceDataMissingError", "TrainingFailedError", "RolloutFailedError"}
#: The same input gives the same verdict: Airflow must fail the task at once.
FINAL = {
    "DataValidationError",
    "SchemaMismatchError",
    "SourceDataFormatError",
    "PromotionRejectedError",
    "GateConfigurationError",
    "DriftReferenceMissingError",
    "RolloutRolledBackError",
    "InvalidNameError",
    "PromotionConflictError",
    "UnverifiedPromotionError",
    "FeatureDefinitionError",
    "ModelSpecError",
    "LabelJoinError",
    "PartitionVersionMissingError",
    "ReproductionMismatchError",
}

CLASSES = {
    name: cls
    for name, cls in vars(exceptions).items()
    if inspect.isclass(cls) and issubclass(cls, exceptions.MlopsError) and cls.__module__ == exceptions.__name__
}


def test_every_class_is_classified():
    assert set(CLASSES) == RETRYABLE | FINAL


@pytest.mark.parametrize("name", sorted(RETRYABLE | FINAL))
def test_retryability_matches_the_class_and_its_docstring(name):
    cls = CLASSES[name]
    doc = " ".join((cls.__doc__ or "").split())
    if name in FINAL:
        assert issubclass(cls, AirflowFailException), f"{name} cannot change on retry: subclass AirflowFailException"
        assert "Not retried" in doc, doc
    else:
        assert not issubclass(cls, AirflowFailException)
        assert "Retried" in doc, doc
