"""Prometheus over an Airflow connection of type ``prometheus`` (the HTTP API's instant queries).

Connection fields: ``host`` is the server (``https://prometheus.example.com``, or a bare host name, then
``schema`` (http/https, default http) and ``port`` complete it); ``login``/``password`` are basic-auth
credentials, or ``password`` alone is a bearer token. Extra ``path_prefix``: a prefix before ``/api/v1`` (a
Prometheus behind a proxy path, e.g. ``/prometheus``).

When the connection does not exist the local server is used: :attr:`PrometheusHook.local_url`
(``http://127.0.0.1:9090``, where ``make up`` starts one scraping the local model servers).
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from mlops_provider.exceptions import MlopsError

if TYPE_CHECKING:
    from airflow.sdk import Connection


class PrometheusQueryError(MlopsError):
    """A query Prometheus refused or could not answer (the server's ``errorType`` and ``error``)."""


class PrometheusHook(BaseHook):
    """Run PromQL instant queries through the connection ``prometheus_conn_id`` (or the local server).

    :param prometheus_conn_id: the ``prometheus`` connection; when it does not exist, :attr:`local_url`.
    :param timeout: seconds per HTTP request.
    """

    conn_name_attr = "prometheus_conn_id"
    default_conn_name = "prometheus_default"
    conn_type = "prometheus"
    hook_name = "Prometheus"
    #: The server used without a connection: the one ``make up`` starts.
    local_url = "http://127.0.0.1:9090"

    def __init__(self, prometheus_conn_id: str = default_conn_name, timeout: float = 10.0) -> None:
        super().__init__()
        self.prometheus_conn_id = prometheus_conn_id
        self.timeout = timeout

    @cached_property
    def connection(self) -> Connection | None:
        """The Airflow connection, or None when it does not exist (local default)."""
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            return self.get_connection(self.prometheus_conn_id)
        except AirflowNotFoundException:
            self.log.info(
                "Connection %r not found: using the local Prometheus at %s.", self.prometheus_conn_id, self.local_url
            )
            return None

    @cached_property
    def base_url(self) -> str:
        """The server's URL (without ``/api/v1``)."""
        conn = self.connection
        if conn is None:
            return self.local_url
        host = (conn.host or "").strip()
        if not host:
            raise MlopsError(
                f"Prometheus connection {self.prometheus_conn_id!r} has no host: set it to the server URL, "
                "e.g. http://prometheus.monitoring:9090."
            )
        if "://" not in host:
            host = f"{conn.schema or 'http'}://{host}"
        parts = urllib.parse.urlsplit(host)
        netloc = parts.netloc if not conn.port or parts.port else f"{parts.netloc}:{conn.port}"
        prefix = str((conn.extra_dejson or {}).get("path_prefix") or "").strip("/")
        path = "/".join(p for p in (parts.path.strip("/"), prefix) if p)
        return urllib.parse.urlunsplit((parts.scheme, netloc, f"/{path}" if path else "", "", "")).rstrip("/")

    def _headers(self) -> dict[str, str]:
        conn = self.connection
        if conn is None or not conn.password:
            return {}
        if conn.login:
            token = base64.b64encode(f"{conn.login}:{conn.password}".encode()).decode()
            return {"Authorization": f"Basic {token}"}
        return {"Authorization": f"Bearer {conn.password}"}

    def get_conn(self) -> str:
        """The server's base URL (the API is plain HTTP: there is no client object)."""
        return self.base_url

    def _get(self, path: str, params: dict[str, str]) -> Any:
        url = f"{self.base_url}{path}?{urllib.parse.urlencode(params)}"
        request = urllib.request.Request(url, headers=self._headers())
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            try:
                body = json.loads(exc.read())
            except ValueError:
                raise PrometheusQueryError(
                    f"Prometheus at {self.base_url} answered HTTP {exc.code} for {path}."
                ) from None
        except (OSError, ValueError) as exc:
            raise PrometheusQueryError(
                f"Prometheus at {self.base_url} ({self.prometheus_conn_id!r}) is unreachable: {exc}"
            ) from None
        if body.get("status") != "success":
            raise PrometheusQueryError(
                f"Prometheus refused {params.get('query', path)!r}: {body.get('errorType')}: {body.get('error')}"
            )
        return body["data"]

    def query(self, promql: str, at: datetime | float | None = None) -> list[dict[str, Any]]:
        """Evaluate ``promql`` at ``at`` (default now); return ``[{"labels": {...}, "value": float}]``.

        A scalar result is one item without labels; ``NaN`` values (e.g. a quantile of no samples) are kept.
        """
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at.timestamp() if isinstance(at, datetime) else float(at):.3f}"
        data = self._get("/api/v1/query", params)
        result = data.get("result")
        if data.get("resultType") == "scalar":
            return [{"labels": {}, "value": float(result[1])}]
        if data.get("resultType") != "vector":
            raise PrometheusQueryError(f"{promql!r} gave a {data.get('resultType')}; expected an instant vector.")
        return [{"labels": dict(item.get("metric") or {}), "value": float(item["value"][1])} for item in result]

    def test_connection(self) -> tuple[bool, str]:
        """Ask the server for its build information (the UI's Test button)."""
        try:
            info = self._get("/api/v1/status/buildinfo", {})
        except PrometheusQueryError as exc:
            return False, str(exc)
        return True, f"Prometheus {info.get('version')} at {self.base_url}"
