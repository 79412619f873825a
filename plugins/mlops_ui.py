"""Airflow 3 UI plugin: an "MLOps" page (models, gate decisions, deployments, drift over time).

The FastAPI app is mounted at ``/mlops`` and shown in the UI's navigation through an external view.
It is built on the first request (``LazyAsgiApp``), so loading plugins, which every Airflow process
does, imports nothing heavy.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin


class LazyAsgiApp:
    """An ASGI app that builds the real one on its first request."""

    def __init__(self, factory: str) -> None:
        self.factory = factory
        self._app: Any = None

    def _build(self) -> Any:
        import importlib

        module, _, name = self.factory.partition(":")
        return getattr(importlib.import_module(module), name)()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        """Serve the request with the real app, building it first if needed."""
        if scope["type"] == "lifespan":  # mounted sub-apps get no lifespan; answer it if asked directly
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            return
        if self._app is None:
            self._app = self._build()
        await self._app(scope, receive, send)

    def __repr__(self) -> str:
        return f"LazyAsgiApp({self.factory})"


def _base_url() -> str:
    from airflow.configuration import conf

    return (conf.get("api", "base_url", fallback="") or "").rstrip("/")


class MlopsUiPlugin(AirflowPlugin):
    """Adds the MLOps page to the Airflow UI."""

    name = "mlops"
    fastapi_apps = [
        {"app": LazyAsgiApp("mlops_provider.ui.app:create_app"), "url_prefix": "/mlops", "name": "MLOps"},
    ]
    external_views = [
        {
            "name": "MLOps",
            "href": f"{_base_url()}/mlops/",
            "destination": "nav",
            "url_route": "mlops",
        }
    ]
