from __future__ import annotations

from importlib.metadata import entry_points

import pytest
from airflow.sdk.module_loading import import_string


def _provider_info() -> dict:
    (entry_point,) = [
        ep for ep in entry_points(group="apache_airflow_provider") if ep.module.startswith("mlops_provider")
    ]
    return entry_point.load()()


def test_entry_point_loads_provider_info():
    info = _provider_info()
    assert info["package-name"] == "airflow-provider-mlops"
    from mlops_provider import __version__

    assert info["versions"] == [__version__]


def test_provider_info_is_valid_against_airflows_schema():
    import json
    from pathlib import Path

    import airflow
    import jsonschema

    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(_provider_info(), schema)


@pytest.mark.parametrize("entry", _provider_info()["connection-types"], ids=lambda e: e["connection-type"])
def test_connection_types_resolve_to_hooks_with_that_type(entry):
    hook = import_string(entry["hook-class-name"])
    assert hook.conn_type == entry["connection-type"]
    assert hook.default_conn_name and hook.conn_name_attr and hook.hook_name
    assert callable(getattr(hook, "test_connection", None))


@pytest.mark.parametrize("path", _provider_info()["extra-links"])
def test_extra_links_import_and_have_names(path):
    link = import_string(path)()
    assert link.name
    assert link.xcom_key.startswith("_link_")


def test_config_section_documents_every_setting():
    from dataclasses import fields

    from mlops_provider.settings import MlopsSettings

    options = _provider_info()["config"]["mlops"]["options"]
    assert {f.name for f in fields(MlopsSettings)} <= set(options)


def test_providers_manager_registers_the_connection_types():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert "airflow-provider-mlops" in manager.providers
    hooks = manager.hooks
    assert "mlflow" in hooks and "feast" in hooks
