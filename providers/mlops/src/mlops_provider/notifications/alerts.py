"""Log and webhook notifiers (``BaseNotifier`` subclasses) and the alert payload they share."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

from mlops_provider.exceptions import MlopsError

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)

NOTIFIERS = ("log", "webhook")


class AlertDeliveryError(MlopsError):
    """The webhook did not accept an alert; carries the URL's host and the HTTP status."""


def build_alert(context: Context, *, title: str | None = None, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build the alert payload from a task/DAG callback context: what failed or drifted, where, and why.

    Only identifiers, states, the exception's message and ``details`` go in; never connection data.
    """
    ti = context.get("ti") or context.get("task_instance")
    dag_run = context.get("dag_run")
    exception = context.get("exception")
    payload: dict[str, Any] = {
        "title": title,
        "dag_id": getattr(ti, "dag_id", None) or getattr(dag_run, "dag_id", None),
        "task_id": getattr(ti, "task_id", None),
        "run_id": getattr(ti, "run_id", None) or getattr(dag_run, "run_id", None),
        "try_number": getattr(ti, "try_number", None),
        "state": str(getattr(ti, "state", "") or "") or None,
        "error": f"{type(exception).__name__}: {exception}" if exception else None,
        "details": dict(details or {}),
    }
    if exception is not None and hasattr(exception, "reason"):
        payload["details"].setdefault("reason", exception.reason)
    if payload["title"] is None:
        what = f"{payload['dag_id']}.{payload['task_id']}" if payload["task_id"] else payload["dag_id"]
        payload["title"] = f"{what} failed" if exception else f"{what}: alert"
    return payload


class MlopsLogNotifier(BaseNotifier):
    """Write alerts to the log (at WARNING), one JSON line per alert.

    :param title: alert title (templated); default: derived from the failed task.
    :param details: extra JSON-serialisable details (templated).
    """

    template_fields = ("title", "details")

    def __init__(self, *, title: str | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.title = title
        self.details = details or {}

    def notify(self, context: Context) -> None:
        """Log the alert."""
        alert = build_alert(context, title=self.title, details=self.details)
        log.warning("MLOps alert: %s", json.dumps(alert, default=str, sort_keys=True))


class MlopsWebhookNotifier(BaseNotifier):
    """POST alerts as JSON to a webhook.

    The URL comes from the connection's ``host`` (a full ``http(s)://`` URL, or host plus ``schema``,
    ``port`` and the ``endpoint`` extra); its ``password``, when set, is sent as a bearer token and
    never logged.

    :param conn_id: the webhook connection (templated); default ``[mlops] alert_webhook_conn_id``.
    :param title: alert title (templated).
    :param details: extra details (templated).
    :param timeout: seconds to wait for the webhook.
    """

    template_fields = ("conn_id", "title", "details")

    def __init__(
        self,
        *,
        conn_id: str | None = None,
        title: str | None = None,
        details: dict[str, Any] | None = None,
        timeout: float = 10.0,
    ) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.title = title
        self.details = details or {}
        self.timeout = timeout

    def _target(self) -> tuple[str, str | None]:
        from airflow.sdk import BaseHook

        from mlops_provider.settings import get_settings

        conn_id = self.conn_id or get_settings().alert_webhook_conn_id
        conn = BaseHook.get_connection(conn_id)
        host = (conn.host or "").strip()
        if not host:
            raise AlertDeliveryError(f"Connection {conn_id!r} has no host; set it to the webhook URL.")
        if "://" in host:
            url = host
        else:
            scheme = conn.schema or "https"
            url = f"{scheme}://{host}{f':{conn.port}' if conn.port else ''}"
        endpoint = (conn.extra_dejson or {}).get("endpoint")
        if endpoint:
            url = f"{url.rstrip('/')}/{str(endpoint).lstrip('/')}"
        return url, conn.password or None

    def send(self, payload: dict[str, Any]) -> int:
        """POST ``payload``; return the HTTP status, raise :class:`AlertDeliveryError` unless it is 2xx."""
        import urllib.error
        import urllib.parse
        import urllib.request

        url, token = self._target()
        headers = {"Content-Type": "application/json", "User-Agent": "airflow-provider-mlops"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(
            url, data=json.dumps(payload, default=str).encode(), headers=headers, method="POST"
        )
        where = urllib.parse.urlsplit(url).netloc
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status = response.status
        except urllib.error.HTTPError as err:
            raise AlertDeliveryError(
                f"Webhook at {where} answered HTTP {err.code}; the alert was not delivered."
            ) from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise AlertDeliveryError(
                f"Webhook at {where} is unreachable ({reason}); the alert was not delivered."
            ) from None
        log.info("Alert %r delivered to webhook at %s (HTTP %s).", payload.get("title"), where, status)
        return status

    def notify(self, context: Context) -> None:
        """POST the alert built from ``context``."""
        self.send(build_alert(context, title=self.title, details=self.details))


def alert_notifier(
    *, title: str | None = None, details: dict[str, Any] | None = None, kind: str | None = None
) -> BaseNotifier:
    """Return the notifier chosen by ``kind`` or ``[mlops] alert_notifier`` (``log`` or ``webhook``)."""
    from mlops_provider.settings import get_settings

    kind = kind or get_settings().alert_notifier
    if kind == "log":
        return MlopsLogNotifier(title=title, details=details)
    if kind == "webhook":
        return MlopsWebhookNotifier(title=title, details=details)
    raise ValueError(f"[mlops] alert_notifier={kind!r} is not one of {', '.join(NOTIFIERS)}.")
