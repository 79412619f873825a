"""The local serving backend as an Airflow hook (the endpoint's processes live in :mod:`mlops_provider.serving.local`).

``LocalServingHook`` is :class:`~mlops_provider.serving.local.LocalEndpoint` with Airflow's hook logging, for code
that composes operators by hand (``make serve``, the end-to-end tests): ``ensure_proxy()``, ``start_slot()``,
``switch()``, ``discard()``, ``stop_all()``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import BaseHook

from mlops_provider.serving.local import LocalEndpoint, feast_config_for_serving, mlflow_env

if TYPE_CHECKING:
    from mlops_provider.settings import MlopsSettings

__all__ = ["LocalServingHook", "feast_config_for_serving", "mlflow_env"]


class LocalServingHook(LocalEndpoint, BaseHook):
    """Start, check, switch and stop local model servers behind the stable endpoint.

    :param settings: bundle settings (default :func:`~mlops_provider.settings.get_settings`).
    :param startup_timeout: seconds a new server may take to become ready.
    :param drain_seconds: seconds the old colour keeps running after the switch, for in-flight requests.
    :param bind_host: address the processes listen on (loopback unless given explicitly).
    """

    hook_name = "Local model serving"

    def __init__(
        self,
        *,
        settings: MlopsSettings | None = None,
        startup_timeout: float = 120.0,
        drain_seconds: float = 1.0,
        bind_host: str = "127.0.0.1",
    ) -> None:
        super().__init__(
            settings=settings, startup_timeout=startup_timeout, drain_seconds=drain_seconds, bind_host=bind_host
        )
