"""The drift-monitoring tasks, added to a DAG in one call: check, short-circuit, asset event and alert.

DAG files import this module, so it stays light: operators only, no data or SDK libraries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops_provider.operators.evidently import DriftAlertOperator, DriftAssetEventOperator, EvidentlyDriftCheckOperator

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
    from airflow.providers.standard.operators.python import ShortCircuitOperator

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
    exceeds = ShortCircuitOperator(
        task_id="drift_exceeds_policy",
        python_callable=exceeds_policy,
        op_args=[check.output],
        ignore_downstream_trigger_rules=True,
    )
    emit = DriftAssetEventOperator(task_id="emit_drift_event", verdict=check.output, outlets=[drift_asset])
    alert = DriftAlertOperator(task_id="alert_drift", verdict=check.output)
    exceeds >> [emit, alert]
    return check
