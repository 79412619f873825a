"""The drift-monitoring tasks, added to a DAG in one call: check, short-circuit, asset event and alert.

Two checks request retraining this way: the drift check (:func:`drift_check_tasks`) and the delayed-label
feedback (:func:`label_feedback_tasks`); both end in the same short-circuit, asset event and alert.

DAG files import this module, so it stays light: operators only, no data or SDK libraries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops_provider.operators.evidently import DriftAlertOperator, DriftAssetEventOperator, EvidentlyDriftCheckOperator
from mlops_provider.operators.labels import LabelFeedbackOperator

if TYPE_CHECKING:
    from airflow.sdk import Asset


def exceeds_policy(verdict: dict[str, Any] | None) -> bool:
    """Whether a drift check's verdict exceeds the policy (the short-circuit condition)."""
    return bool(verdict and verdict.get("drift_detected"))


def drift_check_tasks(
    *,
    model_name: str,
    dataset: str,
    current_start: str,
    current_end: str,
    drift_asset: Asset,
    **check_kwargs: Any,
) -> EvidentlyDriftCheckOperator:
    """Add the drift-monitoring tasks to the DAG being defined and return the check task.

    ``check_drift`` -> ``drift_exceeds_policy`` (short-circuit) -> ``emit_drift_event`` (outlet
    ``drift_asset``, verdict in the event's extra) and ``alert_drift`` (configured notifier). The
    event exists only when drift exceeds the policy: a skipped task emits no asset event.

    :param model_name: registered model name (templated).
    :param dataset: dataset whose validated zone is the current data (templated).
    :param current_start: first day of the current window (templated).
    :param current_end: last day of the current window (templated).
    :param drift_asset: the asset emitted when drift exceeds the policy.
    :param check_kwargs: further :class:`~mlops_provider.operators.evidently.EvidentlyDriftCheckOperator` arguments.
    """
    from mlops_provider.notifications import alert_notifier

    check = EvidentlyDriftCheckOperator(
        task_id="check_drift",
        model_name=model_name,
        dataset=dataset,
        current_start=current_start,
        current_end=current_end,
        on_failure_callback=alert_notifier(title=f"Drift check of {model_name} failed"),
        **check_kwargs,
    )
    retraining_request_tasks(check, drift_asset)
    return check


def label_feedback_tasks(
    *, model_name: str, dataset: str, label_column: str, drift_asset: Asset, **feedback_kwargs: Any
) -> LabelFeedbackOperator:
    """Add the delayed-label tasks to the DAG being defined and return the feedback task.

    ``label_feedback`` (join the labels, record live performance, judge the champion against its holdout score)
    -> ``drift_exceeds_policy`` -> ``emit_drift_event`` (outlet ``drift_asset``) and ``alert_drift``, as for
    the drift check: the event exists only when the live metric dropped by more than ``max_performance_drop``.

    :param model_name: registered model name (templated).
    :param dataset: dataset whose labels zone the labels land in (templated).
    :param label_column: the label column (templated).
    :param drift_asset: the asset emitted when the drop exceeds the policy.
    :param feedback_kwargs: further :class:`~mlops_provider.operators.labels.LabelFeedbackOperator` arguments.
    """
    from mlops_provider.notifications import alert_notifier

    feedback = LabelFeedbackOperator(
        task_id="label_feedback",
        model_name=model_name,
        dataset=dataset,
        label_column=label_column,
        on_failure_callback=alert_notifier(title=f"Label feedback of {model_name} failed"),
        **feedback_kwargs,
    )
    retraining_request_tasks(feedback, drift_asset)
    return feedback


def retraining_request_tasks(check: Any, drift_asset: Asset) -> None:
    """After ``check`` (whose output is a verdict with ``drift_detected``): short-circuit, asset event and alert."""
    from airflow.providers.standard.operators.python import ShortCircuitOperator

    exceeds = ShortCircuitOperator(
        task_id="drift_exceeds_policy",
        python_callable=exceeds_policy,
        op_args=[check.output],
        ignore_downstream_trigger_rules=True,
    )
    emit = DriftAssetEventOperator(task_id="emit_drift_event", verdict=check.output, outlets=[drift_asset])
    alert = DriftAlertOperator(task_id="alert_drift", verdict=check.output)
    exceeds >> [emit, alert]
