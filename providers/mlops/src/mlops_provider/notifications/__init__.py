"""Alert notifiers for drift verdicts and failed rollouts.

``MlopsLogNotifier`` writes the alert to the task log (the default); ``MlopsWebhookNotifier`` POSTs it
as JSON to a webhook whose URL (and optional bearer token) live in an Airflow connection.
``alert_notifier()`` returns the one chosen by ``[mlops] alert_notifier``; use it as a callback::

    ModelDeployOperator(..., on_failure_callback=alert_notifier())
"""

from __future__ import annotations

from mlops_provider.notifications.alerts import (
    MlopsLogNotifier,
    MlopsWebhookNotifier,
    alert_notifier,
    build_alert,
)

__all__ = ["MlopsLogNotifier", "MlopsWebhookNotifier", "alert_notifier", "build_alert"]
