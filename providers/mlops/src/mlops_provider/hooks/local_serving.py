"""The local serving backend as an Airflow hook (the endpoint's processes live in :mod:`mlops_provider.serving.local`).

``LocalServingHook`` is :class:`~mlops_provider.serving.local.LocalEndpoint` with Airflow's hook logging, for code
that composes operators by hand (``make serve``, the end-to-end tests): ``ensure_proxy()``, ``start_slot()``,
``switch()``, ``discard()``, ``stop_all()``.
"""

from __future__ import annotations

from airflow.sdk import BaseHook

from mlops_provider.serving.local import LocalEndpoint, feast_config_for_serving, mlflow_env

__all__ = ["LocalServingHook", "feast_config_for_serving", "mlflow_env"]


class LocalServingHook(LocalEndpoint, BaseHook):
    """Start, check, switch and stop local model servers behind the stable endpoint.

    Takes :class:`~mlops_provider.serving.local.LocalEndpoint`'s arguments (``settings``, ``startup_timeout``,
    ``drain_seconds``, ``bind_host``).
    """

    hook_name = "Local model serving"
