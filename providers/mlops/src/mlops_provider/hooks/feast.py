"""Hook for a Feast feature store: resolve its configuration, load the repository, apply it.

Configuration is layered:

1. ``feature_store.yaml`` of the feature repository (``[mlops] feast_repo_path``), with ``${VAR}`` and
   ``${VAR:-default}`` expanded from the environment;
2. local defaults: relative registry and SQLite paths go under ``[mlops] local_root``/feast;
3. the Feast connection (``conn_type`` ``feast``, default ``feast_default``) when it exists. Its extra
   may hold ``project``, ``provider``, ``registry`` (a path/URI or a mapping), ``online_store`` and
   ``offline_store`` (mappings as in ``feature_store.yaml``), each replacing the file's value. For a
   ``redis`` or ``postgres`` online store, the connection's host, port, login, password and schema
   (database) fill the store's address and credentials, so secrets stay in the connection.

No connection means Feast's local provider: file registry, SQLite online store, file offline store.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import os
import re
import sys
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from mlops_provider.exceptions import MlopsError
from mlops_provider.settings import get_settings

if TYPE_CHECKING:
    from airflow.sdk import Connection
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_SECRET_KEYS = ("password", "secret", "token", "access_key", "private_key")
AS_OF_FILE_STORE = "mlops_provider.features.offline_store.AsOfFileOfflineStore"


def expand_env(text: str, env: Mapping[str, str] | None = None) -> str:
    """Expand ``${VAR}`` and ``${VAR:-default}``; an unset variable without default stays as written."""
    values: Mapping[str, str] = os.environ if env is None else env

    def repl(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if values.get(name):
            return values[name]
        return default if default is not None else match.group(0)

    return _VAR.sub(repl, text)


def _placeholder_name(path: tuple[str, ...]) -> str:
    """``("online_store", "password")`` -> ``FEAST_ONLINE_STORE_PASSWORD``."""
    return "FEAST_" + "_".join(re.sub(r"[^A-Za-z0-9]+", "_", str(p)).strip("_").upper() for p in path if str(p))


def _redact(config: Any, path: tuple[str, ...], found: dict[str, str]) -> Any:
    def placeholder(name_path: tuple[str, ...], value: str) -> str:
        name = _placeholder_name(name_path)
        if found.get(name, value) != value:  # two different secrets would share a name: number the later ones
            n = 2
            while f"{name}_{n}" in found and found[f"{name}_{n}"] != value:
                n += 1
            name = f"{name}_{n}"
        found[name] = value
        return "${" + name + "}"

    if isinstance(config, dict):
        out = {}
        for key, value in config.items():
            if any(s in str(key).lower() for s in _SECRET_KEYS) and isinstance(value, str) and value:
                out[key] = value if _VAR.fullmatch(value) else placeholder((*path, str(key)), value)
            else:
                out[key] = _redact(value, (*path, str(key)), found)
        return out
    if isinstance(config, list):
        return [_redact(v, (*path, str(i)), found) for i, v in enumerate(config)]
    if isinstance(config, str):
        # Inline credentials: redis "host:port,password=..." and "scheme://user:pass@host" URLs. The
        # placeholder is named after the section holding the string (e.g. FEAST_REGISTRY_PASSWORD).
        section = path[:-1] if len(path) > 1 else path

        def inline(match: re.Match[str]) -> str:
            value = match.group(2)
            if _VAR.fullmatch(value):
                return match.group(0)
            return match.group(1) + placeholder((*section, "password"), value) + match.group(3)

        config = re.sub(r"(password=)([^,]+)()", inline, config)
        return re.sub(r"(://[^:/@]+:)([^@]+)(@)", inline, config)
    return config


def redact(config: Any) -> Any:
    """Return ``config`` with each secret value replaced by its own ``${VAR}`` placeholder (for files and logs).

    The variable is named after where the secret sits: ``online_store.password`` becomes
    ``${FEAST_ONLINE_STORE_PASSWORD}``, ``offline_store.password`` ``${FEAST_OFFLINE_STORE_PASSWORD}``, the
    password inside ``registry.path``'s URL ``${FEAST_REGISTRY_PASSWORD}``. Values that already are a
    ``${VAR}`` stay as written. :func:`secret_environment` returns the value each name stands for.
    """
    return _redact(config, (), {})


def secret_environment(config: Any) -> dict[str, str]:
    """Return ``{placeholder variable: secret value}`` for the placeholders :func:`redact` puts in ``config``.

    The mapping to put in a Kubernetes Secret or a Feast client's environment; never log it.
    """
    found: dict[str, str] = {}
    _redact(config, (), found)
    return found


class FeastHook(BaseHook):
    """Build Feast ``RepoConfig`` and ``FeatureStore`` objects from the repository and a ``feast`` connection.

    :param feast_conn_id: Feast connection; default ``[mlops] feast_conn_id``. A missing connection
        selects the local stores under ``[mlops] local_root``/feast.
    :param repo_path: feature repository; default ``[mlops] feast_repo_path``.
    """

    conn_name_attr = "feast_conn_id"
    default_conn_name = "feast_default"
    conn_type = "feast"
    hook_name = "Feast"

    def __init__(self, feast_conn_id: str | None = None, repo_path: str | Path | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        settings = get_settings()
        self.feast_conn_id = feast_conn_id or settings.feast_conn_id
        self.repo_path = Path(repo_path or settings.feast_repo_path).expanduser().resolve()
        self.local_root = settings.feast_local_root

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Label the connection form for Feast."""
        return {
            "hidden_fields": [],
            "relabeling": {
                "host": "Online store host (redis/postgres)",
                "schema": "Online store database (postgres)",
                "login": "Online store user",
                "password": "Online store password",
            },
            "placeholders": {
                "extra": json.dumps(
                    {
                        "project": "my_project",
                        "registry": "s3://my-bucket/feast/registry.db",
                        "online_store": {"type": "redis"},
                        "offline_store": {"type": "file"},
                    }
                ),
            },
        }

    @cached_property
    def connection(self) -> Connection | None:
        """The Feast connection, or ``None`` when it does not exist (local stores)."""
        try:
            return self.get_connection(self.feast_conn_id)
        except Exception as err:  # AirflowNotFoundException, or no metadata access
            self.log.info(
                "No Feast connection %r (%s); using the local stores.", self.feast_conn_id, type(err).__name__
            )
            return None

    def _file_config(self) -> dict[str, Any]:
        import yaml

        path = self.repo_path / "feature_store.yaml"
        if not path.is_file():
            raise MlopsError(
                f"No feature_store.yaml in {self.repo_path}; set [mlops] feast_repo_path to the feature repository."
            )
        return yaml.safe_load(expand_env(path.read_text())) or {}

    def _localise(self, config: dict[str, Any]) -> dict[str, Any]:
        """Put relative local store paths under ``local_root``/feast."""
        self.local_root.mkdir(parents=True, exist_ok=True)
        registry = config.get("registry", "registry.db")
        if isinstance(registry, str):
            registry = {"registry_type": "file", "path": registry}
        if registry.get("registry_type", "file") == "file":
            path = str(registry.get("path", "registry.db"))
            if "://" not in path and not Path(path).is_absolute():
                registry["path"] = str(self.local_root / path)
        config["registry"] = registry
        online = config.get("online_store") or {"type": "sqlite"}
        if online.get("type", "sqlite") == "sqlite":
            path = str(online.get("path", "online_store.db"))
            if not Path(path).is_absolute():
                online["path"] = str(self.local_root / path)
        config["online_store"] = online
        config.setdefault("offline_store", {"type": "file"})
        return config

    def _apply_connection(self, config: dict[str, Any]) -> dict[str, Any]:
        conn = self.connection
        if conn is None:
            return config
        extra = conn.extra_dejson or {}
        for key in ("project", "provider", "entity_key_serialization_version"):
            if extra.get(key):
                config[key] = extra[key]
        for key in ("registry", "online_store", "offline_store", "batch_engine"):
            if extra.get(key):
                value = extra[key]
                config[key] = (
                    {"registry_type": "file", "path": value}
                    if key == "registry" and isinstance(value, str)
                    else copy.deepcopy(value)
                )
        online = config.get("online_store") or {}
        kind = online.get("type")
        if conn.host and kind == "redis":
            address = f"{conn.host}:{conn.port or 6379}"
            if conn.password:
                address += f",password={conn.password}"
            online.setdefault("connection_string", address)
        elif conn.host and kind == "postgres":
            online.setdefault("host", conn.host)
            online.setdefault("port", conn.port or 5432)
            online.setdefault("database", conn.schema or "feast")
            if conn.login:
                online.setdefault("user", conn.login)
            if conn.password:
                online.setdefault("password", conn.password)
        return config

    @cached_property
    def resolved_config(self) -> dict[str, Any]:
        """The effective configuration as a ``feature_store.yaml`` mapping (secrets included: do not log it)."""
        config = self._file_config()
        config = self._apply_connection(self._localise(config))
        config.setdefault("project", "default")
        config.setdefault("provider", "local")
        config.setdefault("entity_key_serialization_version", 3)
        return config

    def get_repo_config(self) -> RepoConfig:
        """Return Feast's ``RepoConfig`` for the resolved configuration."""
        from feast.repo_config import RepoConfig

        config = copy.deepcopy(self.resolved_config)
        if (config.get("offline_store") or {}).get("type") == "file":
            # Same files and semantics, a row-preserving vectorised as-of join (see features/offline_store.py).
            config["offline_store"] = {**config["offline_store"], "type": AS_OF_FILE_STORE}
        return RepoConfig(repo_path=self.repo_path, **config)

    def write_resolved_config(self, path: str | Path | None = None) -> Path:
        """Write the resolved ``feature_store.yaml`` (secrets as placeholders) for the Feast CLI or a model server.

        :param path: target file; default ``<local_root>/feast/feature_store.yaml``.
        """
        import yaml

        target = Path(path) if path else self.local_root / "feature_store.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        text = "# Written by FeastHook: the resolved configuration of " + str(self.repo_path) + "\n"
        text += yaml.safe_dump(redact(self.resolved_config), sort_keys=False)
        if not target.exists() or target.read_text() != text:
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            tmp.write_text(text)
            tmp.replace(target)
        return target

    def get_conn(self) -> FeatureStore:
        """Return a Feast ``FeatureStore`` (the resolved configuration is also written for other clients)."""
        return self.get_feature_store()

    def get_feature_store(self) -> FeatureStore:
        """Return a Feast ``FeatureStore`` for the resolved configuration."""
        from feast import FeatureStore

        config = self.get_repo_config()
        self.write_resolved_config()
        return FeatureStore(repo_path=str(self.repo_path), config=config)

    @cached_property
    def project(self) -> str:
        """Feast project name."""
        return str(self.resolved_config["project"])

    def load_definitions(self) -> list[Any]:
        """Import every module of the repository and return its Feast objects (entities, sources, views, services)."""
        from feast import Entity, FeatureService, FeatureView
        from feast.data_source import DataSource
        from feast.on_demand_feature_view import OnDemandFeatureView

        kinds = (Entity, DataSource, FeatureView, OnDemandFeatureView, FeatureService)
        package = "mlops_feast_repo_" + hashlib.sha1(str(self.repo_path).encode()).hexdigest()[:10]
        objects: list[Any] = []
        files = sorted(
            p
            for p in self.repo_path.rglob("*.py")
            if p.name != "__init__.py" and not p.name.startswith(("_", "test_")) and "__pycache__" not in p.parts
        )
        if not files:
            raise MlopsError(f"No Python definitions in the feature repository {self.repo_path}.")
        for file in files:
            name = f"{package}.{'.'.join(file.relative_to(self.repo_path).with_suffix('').parts)}"
            spec = importlib.util.spec_from_file_location(name, file)
            if spec is None or spec.loader is None:
                raise MlopsError(f"Cannot import feature definitions from {file}.")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except Exception as err:
                raise MlopsError(f"Importing feature definitions {file} failed: {type(err).__name__}: {err}") from err
            for value in vars(module).values():
                if isinstance(value, kinds) and not any(value is o for o in objects):
                    objects.append(value)
        return objects

    def apply(self, store: FeatureStore | None = None) -> dict[str, Any]:
        """Register the repository's objects, removing registered ones the repository no longer defines.

        Idempotent: applying an unchanged repository changes nothing.
        """
        from feast import Entity, FeatureService, FeatureView
        from feast.data_source import DataSource, RequestSource
        from feast.on_demand_feature_view import OnDemandFeatureView

        store = store or self.get_feature_store()
        objects = self.load_definitions()
        names = {(type(o).__name__, o.name) for o in objects}
        registered: list[Any] = []
        registered += store.list_feature_services()
        registered += store.list_on_demand_feature_views()
        registered += store.list_feature_views()
        registered += [e for e in store.list_entities() if e.name != "__dummy"]
        registered += store.list_data_sources()
        stale = [o for o in registered if (type(o).__name__, o.name) not in names]
        store.apply(objects, objects_to_delete=stale, partial=False)

        def kind(o: Any) -> str:
            for cls, label in (
                (FeatureService, "feature_services"),
                (OnDemandFeatureView, "on_demand_feature_views"),
                (FeatureView, "feature_views"),
                (Entity, "entities"),
                (RequestSource, "request_sources"),
                (DataSource, "data_sources"),
            ):
                if isinstance(o, cls):
                    return label
            return "other"

        applied: dict[str, list[str]] = {}
        for o in objects:
            applied.setdefault(kind(o), []).append(o.name)
        result = {
            "project": store.project,
            "repo_path": str(self.repo_path),
            "applied": {k: sorted(v) for k, v in sorted(applied.items())},
            "deleted": sorted(f"{kind(o)}:{o.name}" for o in stale),
        }
        self.log.info("Applied Feast repo %s to project %s: %s", self.repo_path, store.project, result["applied"])
        return result

    def test_connection(self) -> tuple[bool, str]:
        """Open the registry and the online store; report what is registered."""
        try:
            store = self.get_feature_store()
            views = [v.name for v in store.list_feature_views()]
            store._get_provider()  # instantiates the online store client
        except Exception as err:
            return False, f"{type(err).__name__}: {err}"
        return (
            True,
            f"Feast project {store.project}: {len(views)} feature views registered ({', '.join(views) or 'none'}).",
        )
