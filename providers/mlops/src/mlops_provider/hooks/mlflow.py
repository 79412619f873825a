"""MLflow tracking server and model registry over an Airflow connection of type ``mlflow``.

Connection fields: ``host`` is the tracking server (``https://mlflow.example.com`` or a bare host name,
then ``schema`` (http/https, default http) and ``port`` complete it); ``login``/``password`` are
basic-auth credentials, or ``password`` alone is a bearer token when ``extra.auth_type`` is ``token``.
Extras: ``registry_uri`` (a separate registry store), ``ui_url`` (the UI base URL people open, when it
differs from the API URL), ``insecure_tls`` (skip TLS verification).

When the connection does not exist the embedded local store is used: SQLite at
``settings.mlflow_local_tracking_uri`` with artifacts under ``settings.mlflow_local_artifact_root``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Iterator, Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

from airflow.sdk import BaseHook

from mlops_provider.settings import get_settings

if TYPE_CHECKING:
    from airflow.sdk import Connection
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

# MLflow reads credentials from the environment at request time; the scope below sets them only for the
# duration of one client call, serialised so two threads never see each other's credentials.
_ENV_LOCK = threading.RLock()
_CREDENTIAL_ENV_KEYS = (
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_INSECURE_TLS",
)


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


class MlflowHook(BaseHook):
    """Talk to MLflow through the connection ``mlflow_conn_id`` (or the embedded local store).

    :param mlflow_conn_id: the ``mlflow`` connection; defaults to ``[mlops] mlflow_conn_id``
        (``mlflow_default``). When it does not exist the local SQLite store is used.
    """

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = "mlflow_default"
    conn_type = "mlflow"
    hook_name = "MLflow"

    def __init__(self, mlflow_conn_id: str | None = None) -> None:
        super().__init__()
        self.mlflow_conn_id = mlflow_conn_id or get_settings().mlflow_conn_id

    # ------------------------------------------------------------------ connection
    @cached_property
    def connection(self) -> Connection | None:
        """The Airflow connection, or None when it does not exist (local default)."""
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            return self.get_connection(self.mlflow_conn_id)
        except AirflowNotFoundException:
            self.log.info("Connection %r not found: using the local MLflow store.", self.mlflow_conn_id)
            return None

    @property
    def is_local(self) -> bool:
        """True when the embedded local store is used (no connection)."""
        return self.connection is None

    @cached_property
    def _extras(self) -> dict[str, Any]:
        conn = self.connection
        if conn is None:
            return {}
        extras = dict(conn.extra_dejson or {})
        # Accept the UI's prefixed form too (``extra__mlflow__<field>``).
        for key in list(extras):
            if key.startswith("extra__mlflow__"):
                extras.setdefault(key.removeprefix("extra__mlflow__"), extras[key])
        return extras

    @cached_property
    def tracking_uri(self) -> str:
        """The tracking URI: from the connection, or the local SQLite store."""
        conn = self.connection
        if conn is None:
            settings = get_settings()
            Path(settings.local_root, "mlflow").mkdir(parents=True, exist_ok=True)
            return settings.mlflow_local_tracking_uri
        if self._extras.get("tracking_uri"):
            return str(self._extras["tracking_uri"]).rstrip("/")
        host = (conn.host or "").strip()
        if not host:
            raise ValueError(
                f"MLflow connection {self.mlflow_conn_id!r} has no host: set it to the tracking server URL, "
                "e.g. https://mlflow.example.com."
            )
        if "://" not in host:
            host = f"{conn.schema or 'http'}://{host}"
        parts = urlsplit(host)
        netloc = parts.netloc
        if conn.port and parts.port is None:
            netloc = f"{netloc}:{conn.port}"
        return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), parts.query, "")).rstrip("/")

    @cached_property
    def registry_uri(self) -> str:
        """The model registry URI (``extra.registry_uri``, else the tracking URI)."""
        return str(self._extras.get("registry_uri") or self.tracking_uri)

    @property
    def artifact_location(self) -> str | None:
        """Artifact root for experiments this hook creates in the local store (None for servers)."""
        return get_settings().mlflow_local_artifact_root if self.is_local else None

    def credential_env(self) -> dict[str, str]:
        """Environment variables MLflow needs for this connection's credentials (never log these)."""
        conn = self.connection
        if conn is None:
            return {}
        env: dict[str, str] = {}
        auth_type = str(self._extras.get("auth_type") or ("basic" if conn.login else "token")).lower()
        if conn.password and auth_type == "token":
            env["MLFLOW_TRACKING_TOKEN"] = conn.password
        elif conn.login:
            env["MLFLOW_TRACKING_USERNAME"] = conn.login
            env["MLFLOW_TRACKING_PASSWORD"] = conn.password or ""
        if _truthy(self._extras.get("insecure_tls", False)):
            env["MLFLOW_TRACKING_INSECURE_TLS"] = "true"
        return env

    @contextlib.contextmanager
    def credentials(self, **extra_env: str) -> Iterator[None]:
        """Expose the connection's credentials (and ``extra_env``) to MLflow for the duration of the block only."""
        env = {**self.credential_env(), **extra_env}
        if not env:
            yield
            return
        keys = set(_CREDENTIAL_ENV_KEYS) | set(extra_env)
        with _ENV_LOCK:
            saved = {key: os.environ.get(key) for key in keys}
            try:
                for key in _CREDENTIAL_ENV_KEYS:
                    os.environ.pop(key, None)
                os.environ.update(env)
                yield
            finally:
                for key, value in saved.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value

    # ------------------------------------------------------------------ client
    def get_conn(self) -> MlflowClient:
        """Return an ``MlflowClient`` (same as :meth:`get_client`)."""
        return self.get_client()

    def get_client(self) -> MlflowClient:
        """Return an ``MlflowClient`` for the tracking and registry URIs.

        With credentials on the connection, every client call runs inside :meth:`credentials`.
        """
        import mlflow

        if not self.credential_env():
            return mlflow.MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)
        client_class = _credential_scoped_client_class()
        return client_class(self, tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)

    def ui_url(self, path: str = "") -> str | None:
        """Return a URL of the MLflow UI (``path`` like ``#/experiments/1/runs/<id>``); None for the local store."""
        if self.is_local:
            return None
        base = str(self._extras.get("ui_url") or self.tracking_uri).rstrip("/")
        if not base.startswith(("http://", "https://")):
            return None
        if not path:
            return base + "/"
        return f"{base}/{path.lstrip('/')}"

    def run_url(self, experiment_id: str, run_id: str) -> str | None:
        """UI URL of a run."""
        return self.ui_url(f"#/experiments/{quote(str(experiment_id))}/runs/{quote(run_id)}")

    def model_version_url(self, model_name: str, version: str | int) -> str | None:
        """UI URL of a registered model version."""
        return self.ui_url(f"#/models/{quote(model_name)}/versions/{quote(str(version))}")

    # ------------------------------------------------------------------ registry helpers
    def set_alias(self, model_name: str, alias: str, version: str | int) -> None:
        """Point ``alias`` of ``model_name`` at ``version``."""
        self.get_client().set_registered_model_alias(model_name, alias, str(version))
        self.log.info("Alias %s of %s now points at version %s.", alias, model_name, version)

    def get_version_by_alias(self, model_name: str, alias: str) -> ModelVersion | None:
        """Return the version ``alias`` points at, or None when the model or the alias does not exist."""
        from mlflow.exceptions import MlflowException

        try:
            return self.get_client().get_model_version_by_alias(model_name, alias)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
                return None
            raise

    def delete_alias(self, model_name: str, alias: str) -> None:
        """Remove ``alias`` from ``model_name`` (no error when it does not exist)."""
        from mlflow.exceptions import MlflowException

        try:
            self.get_client().delete_registered_model_alias(model_name, alias)
        except MlflowException as exc:
            if exc.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
                raise

    def registered_model_tags(self, model_name: str) -> dict[str, str]:
        """Return the tags of the registered model ``model_name`` (empty when it does not exist)."""
        from mlflow.exceptions import MlflowException

        try:
            return dict(self.get_client().get_registered_model(model_name).tags or {})
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
                return {}
            raise

    def set_registered_model_tag(self, model_name: str, key: str, value: str) -> None:
        """Set one tag of the registered model ``model_name``."""
        self.get_client().set_registered_model_tag(model_name, key, value)

    def delete_registered_model_tag(self, model_name: str, key: str) -> None:
        """Remove one tag of the registered model ``model_name`` (no error when it is not set)."""
        from mlflow.exceptions import MlflowException

        try:
            self.get_client().delete_registered_model_tag(model_name, key)
        except MlflowException as exc:
            if exc.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
                raise

    def get_model_version(self, model_name: str, version: str | int) -> ModelVersion:
        """Return one registered version."""
        return self.get_client().get_model_version(model_name, str(version))

    def version_download_uri(self, model_name: str, version: str | int) -> str:
        """Concrete artifact location of a version (what a model server loads)."""
        return self.get_client().get_model_version_download_uri(model_name, str(version))

    def set_version_tags(
        self, model_name: str, version: str | int, tags: Mapping[str, str], run_id: str | None = None
    ) -> None:
        """Tag a model version and, when given, its run with the same ``tags``."""
        client = self.get_client()
        for key, value in tags.items():
            client.set_model_version_tag(model_name, str(version), key, value)
            if run_id:
                client.set_tag(run_id, key, value)

    def get_run(self, run_id: str) -> Any:
        """Return an MLflow run (info, params, metrics, tags)."""
        return self.get_client().get_run(run_id)

    def run_tags(self, run_id: str) -> dict[str, str]:
        """Return a run's tags."""
        return dict(self.get_run(run_id).data.tags)

    def run_metrics(self, run_id: str) -> dict[str, float]:
        """Return a run's metrics (the latest value of each)."""
        return {key: float(value) for key, value in self.get_run(run_id).data.metrics.items()}

    def log_dict(self, run_id: str, payload: Mapping[str, Any], artifact_file: str) -> None:
        """Store ``payload`` as a JSON artifact of a run."""
        self.get_client().log_dict(run_id, dict(payload), artifact_file)

    def get_or_create_experiment(self, name: str) -> str:
        """Return the id of experiment ``name``, creating it (with the local artifact root when local)."""
        from mlflow.exceptions import MlflowException

        client = self.get_client()
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        try:
            return client.create_experiment(name, artifact_location=self.artifact_location)
        except MlflowException:  # created meanwhile by a concurrent task
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
            return experiment.experiment_id

    def log_run(
        self,
        experiment_name: str,
        *,
        run_name: str,
        tags: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        artifacts: Mapping[str, str] | None = None,
        dicts: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> tuple[str, str]:
        """Record one finished run in a single call; return ``(experiment_id, run_id)``.

        :param artifacts: local file path -> artifact folder inside the run.
        :param dicts: artifact file (e.g. ``drift/summary.json``) -> JSON payload.
        """
        import time

        from mlflow.entities import Metric, Param

        client = self.get_client()
        experiment_id = self.get_or_create_experiment(experiment_name)
        run = client.create_run(experiment_id, run_name=run_name, tags=dict(tags or {}))
        run_id = run.info.run_id
        try:
            now = int(time.time() * 1000)
            client.log_batch(
                run_id,
                metrics=[Metric(k, float(v), now, 0) for k, v in (metrics or {}).items()],
                params=[Param(k, str(v)[:6000]) for k, v in (params or {}).items()],
            )
            for local_path, artifact_dir in (artifacts or {}).items():
                client.log_artifact(run_id, local_path, artifact_dir)
            for artifact_file, payload in (dicts or {}).items():
                client.log_dict(run_id, dict(payload), artifact_file)
        except Exception:
            client.set_terminated(run_id, status="FAILED")
            raise
        client.set_terminated(run_id)
        return experiment_id, run_id

    def training_set_of_run(self, run_id: str) -> tuple[str | None, dict[str, Any]]:
        """Return ``(training_set_uri, manifest)`` recorded by the trainer on ``run_id``.

        The URI comes from the run's lineage tag; the manifest from the snapshot next to it, else from the
        run's ``training_set/manifest.json`` artifact. Either may be missing (None / empty dict).
        """
        import json
        import tempfile

        from mlops_provider.lineage import TRAINING_SET_MANIFEST_ARTIFACT, TRAINING_SET_URI_TAG
        from mlops_provider.storage import storage_path

        uri = self.run_tags(run_id).get(TRAINING_SET_URI_TAG) or None
        manifest: dict[str, Any] = {}
        if uri:
            folder = storage_path(uri)
            manifest_path = (folder if folder.is_dir() else folder.parent) / "manifest.json"
            if manifest_path.exists():
                manifest = json.loads(manifest_path.read_text())
        if not manifest:
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    local = self.get_client().download_artifacts(run_id, TRAINING_SET_MANIFEST_ARTIFACT, tmp)
                    manifest = json.loads(Path(local).read_text())
                except Exception as err:  # MLflow raises several types for a missing artifact
                    self.log.info("Run %s has no readable %s (%s).", run_id, TRAINING_SET_MANIFEST_ARTIFACT, err)
        return uri or manifest.get("uri"), manifest

    def feature_service_of_version(self, version: ModelVersion) -> str | None:
        """Return the Feast FeatureService ``version`` was trained on, or None when its lineage names none.

        The system of record is the version's ``mlops.feature_service`` lineage tag (the trainer copies it from
        the training-set manifest); versions registered without it fall back to their run's tag, then to the
        run's training-set manifest.
        """
        from mlops_provider.lineage import FEATURE_SERVICE_TAG

        service = (version.tags or {}).get(FEATURE_SERVICE_TAG)
        if not service and version.run_id:
            service = self.run_tags(version.run_id).get(FEATURE_SERVICE_TAG)
            if not service:
                service = self.training_set_of_run(version.run_id)[1].get("feature_service")
        return str(service) if service else None

    def load_xgboost_model(self, model_name: str, version: str | int, workdir: str | None = None) -> Any:
        """Download a version and load it through MLflow's xgboost flavour (never pickle/pyfunc).

        Returns an ``xgboost.Booster`` (or the sklearn wrapper it was logged as).
        """
        import tempfile

        import mlflow.artifacts
        import mlflow.xgboost

        uri = self.version_download_uri(model_name, version)
        with self.credentials():
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=uri,
                dst_path=workdir or tempfile.mkdtemp(prefix="mlops-model-"),
                tracking_uri=self.tracking_uri,
                registry_uri=self.registry_uri,
            )
            return mlflow.xgboost.load_model(local)

    def version_threshold(self, model_name: str, version: ModelVersion, default: float = 0.5) -> float:
        """Return the decision threshold the trainer recorded for ``version`` (version tag, else run tag)."""
        from mlops_provider.lineage import THRESHOLD_TAG

        threshold = (version.tags or {}).get(THRESHOLD_TAG)
        if threshold is None and version.run_id:
            threshold = self.run_tags(version.run_id).get(THRESHOLD_TAG)
        return float(threshold) if threshold is not None else default

    def test_connection(self) -> tuple[bool, str]:
        """Check that the tracking server answers (the UI's Test button)."""
        import mlflow

        try:
            # One quick attempt: the UI's Test button should answer in seconds, not after MLflow's retries.
            with self.credentials(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT="10"):
                client = mlflow.MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)
                client.search_experiments(max_results=1)
                client.search_registered_models(max_results=1)
        except Exception as exc:
            return False, f"MLflow at {self.tracking_uri} is not reachable: {type(exc).__name__}: {exc}"
        return True, f"Connected to MLflow at {self.tracking_uri}."


@functools.cache
def _credential_scoped_client_class() -> type:
    """Build (once) an ``MlflowClient`` subclass whose public calls run inside the hook's credential scope."""
    import mlflow

    class CredentialScopedMlflowClient(mlflow.MlflowClient):
        """An ``MlflowClient`` that holds no credentials itself; each call borrows them from the hook."""

        def __init__(self, hook: MlflowHook, **kwargs: Any) -> None:
            object.__setattr__(self, "_mlops_hook", hook)
            with hook.credentials():
                super().__init__(**kwargs)

        def __getattribute__(self, name: str) -> Any:
            attr = super().__getattribute__(name)
            if name.startswith("_") or not callable(attr):
                return attr
            hook = object.__getattribute__(self, "_mlops_hook")

            @functools.wraps(attr)
            def scoped(*args: Any, **kwargs: Any) -> Any:
                with hook.credentials():
                    return attr(*args, **kwargs)

            return scoped

    return CredentialScopedMlflowClient
