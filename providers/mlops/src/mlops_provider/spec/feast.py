"""Feast definitions of a model spec: entities, aggregate and static views, request-time features, a service.

A Feast repository module registers every spec's objects with :func:`repo_objects`::

    from mlops_provider.spec.feast import repo_objects

    globals().update(repo_objects())

For a spec named ``<model>`` that gives, all named ``<model>__...`` so several models share one repository
and project without clashing (and without touching the objects the repository defines by hand):

- an ``Entity`` ``<model>__<key>`` per entity key, with its value type (``int64`` or ``string``);
- an aggregate ``FeatureView`` ``<model>__<key>_aggregates`` per entity with aggregates, tagged the way
  :mod:`mlops_provider.features.aggregates` reads them (view tags ``mlops.aggregate.source/key/timestamp``,
  field tags ``aggregation``/``column``/``window`` and ``label_lag`` when the spec gives one), its rows under
  ``<data_root>/features/<view>``;
- a static ``FeatureView`` ``<model>__<table>`` per static table, read from the table's Parquet ``FileSource``;
- an on-demand view ``<model>__request`` over a ``RequestSource`` with the event's own columns as
  ``<column>_value``: numbers as ``Float64``, categoricals as ``String`` (the model learns them as XGBoost native
  categoricals; a value it never saw is missing there);
- the ``FeatureService`` named in the spec (default ``<model>_v1``), tagged with the model's name.

Feast is imported inside the functions: only Feast itself (and the operators that load the repository)
imports these definitions, never DAG parsing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from types import FunctionType
from typing import Any, cast

from mlops_provider.features.aggregates import KEY_TAG, SOURCE_TAG, TIMESTAMP_TAG
from mlops_provider.spec.model import ModelSpec

#: Tag on the feature service naming the model it serves.
MODEL_TAG = "model"


def _local_path(uri: str) -> str:
    # Feast's file offline store wants plain paths for local files.
    return uri[len("file://") :] if uri.startswith("file://") else uri


def _s3_endpoint() -> str | None:
    """Endpoint of an S3-compatible store (MinIO, moto) for Feast's reads of s3:// files."""
    import os

    return os.environ.get("FEAST_S3_ENDPOINT_URL") or None


def request_transform_source(request: tuple[str, ...], categoricals: tuple[str, ...]) -> str:
    """Return the source of the on-demand transformation of the request-time features (python mode, lists in and out).

    Feast keeps a python-mode transformation as its source text and rebuilds the function from it wherever
    features are computed (training sets, the model server), so the text is self-contained: the spec's
    columns and categorical values are written into it as literals (``repr`` of validated names and strings).
    """
    return (
        "def transform(inputs: dict) -> dict:\n"
        f"    request = {tuple(request)!r}\n"
        f"    categoricals = {tuple(categoricals)!r}\n"
        "    out = {}\n"
        "    for column in request:\n"
        '        out[column + "_value"] = [None if v is None else float(v) for v in inputs[column]]\n'
        "    for column in categoricals:\n"
        '        out[column + "_value"] = [None if v is None else str(v) for v in inputs[column]]\n'
        "    return out\n"
    )


def request_transform(request: tuple[str, ...], categoricals: tuple[str, ...]) -> Callable[[dict], dict]:
    """Return the transformation function of :func:`request_transform_source`, built the way Feast rebuilds it."""
    from feast.transformation.udf_rehydrate import resolve_udf

    return resolve_udf(udf_string=request_transform_source(request, categoricals), preferred_name="transform")


def spec_objects(spec: ModelSpec, data_root: str | None = None) -> dict[str, Any]:
    """Return the Feast objects of ``spec`` by name (entities, sources, views, on-demand view, service).

    :param spec: the model spec.
    :param data_root: base URI of the data zones (aggregate files, ``{data_root}`` in static paths);
        default ``[mlops] data_root``.
    """
    from feast import Entity, FeatureService, FeatureView, Field, FileSource, RequestSource, ValueType
    from feast.on_demand_feature_view import OnDemandFeatureView
    from feast.types import Bool, Float64, Int64, String

    if data_root is None:
        from mlops_provider.settings import get_settings

        data_root = get_settings().data_root
    data_root = data_root.rstrip("/")
    value_types = {"int64": ValueType.INT64, "string": ValueType.STRING}
    dtypes = {"int64": Int64, "string": String, "float64": Float64, "bool": Bool}
    objects: dict[str, Any] = {}

    entities = {}
    for key, type_ in spec.entities.items():
        entity = Entity(
            name=spec.view_name(key),
            join_keys=[key],
            value_type=value_types[type_],
            description=f"{key} of {spec.name}",
        )
        entities[key] = objects[entity.name] = entity

    views: list[Any] = []
    for view_name, fields in spec.aggregate_views.items():
        key = fields[0].entity
        source = FileSource(
            name=f"{view_name}_source",
            path=_local_path(f"{data_root}/features/{view_name}"),
            timestamp_field=spec.timestamp_column,
            s3_endpoint_override=_s3_endpoint(),
            description=f"{key} aggregates of {spec.dataset} at every change point.",
        )
        schema = [Field(name=key, dtype=dtypes[spec.entities[key]])]
        schema += [
            Field(name=f.name, dtype=Int64 if f.function in ("count", "distinct_count") else Float64, tags=f.tags)
            for f in fields
        ]
        view = FeatureView(
            name=view_name,
            entities=[entities[key]],
            # No TTL: expiry rows make every window decay exactly, so the latest row is always current.
            ttl=timedelta(0),
            schema=schema,
            source=source,
            online=True,
            tags={SOURCE_TAG: spec.dataset, KEY_TAG: key, TIMESTAMP_TAG: spec.timestamp_column},
            description=f"Windowed aggregates of {spec.dataset} per {key}.",
        )
        objects[source.name] = source
        objects[view.name] = view
        views.append(view)

    for view_name, table in spec.static_views.items():
        source = FileSource(
            name=f"{view_name}_source",
            path=_local_path(table.path.replace("{data_root}", data_root)),
            timestamp_field=table.timestamp_column,
            s3_endpoint_override=_s3_endpoint(),
            description=f"Static table {table.name} of {spec.name}, one row per {table.entity}.",
        )
        view = FeatureView(
            name=view_name,
            entities=[entities[table.entity]],
            ttl=timedelta(0),
            schema=[Field(name=table.entity, dtype=dtypes[spec.entities[table.entity]])]
            + [Field(name=column, dtype=dtypes[type_]) for column, type_ in table.features.items()],
            source=source,
            online=True,
            description=f"Attributes of each {table.entity} from {Path(table.path).name}.",
        )
        objects[source.name] = source
        objects[view.name] = view
        views.append(view)

    request_view = spec.request_view
    if request_view is not None:
        request = RequestSource(
            name=f"{request_view}_source",
            schema=[Field(name=c, dtype=dtypes[spec.column_types.get(c, "float64")]) for c in spec.features.request]
            + [Field(name=c, dtype=String) for c in spec.features.categoricals],
            description=f"The {spec.dataset} event being scored.",
        )
        odfv = OnDemandFeatureView(
            name=request_view,
            sources=[request],
            schema=[Field(name=f"{c}_value", dtype=Float64) for c in spec.features.request]
            + [Field(name=f"{c}_value", dtype=String) for c in spec.features.categoricals],
            mode="python",
            udf=cast(FunctionType, request_transform(spec.features.request, spec.features.categoricals)),
            udf_string=request_transform_source(spec.features.request, spec.features.categoricals),
            description=f"Request-time features of {spec.name}: the event's own columns.",
        )
        objects[request.name] = request
        objects[odfv.name] = odfv
        views.append(odfv)

    service = FeatureService(
        name=spec.feature_service,
        features=views,
        description=spec.description or f"Features of {spec.name}.",
        tags={MODEL_TAG: spec.name},
    )
    objects[service.name] = service
    return objects


def repo_objects(folder: str | Path | None = None, data_root: str | None = None) -> dict[str, Any]:
    """Return the Feast objects of every spec in ``folder`` (default ``[mlops] model_specs_folder``) by name.

    :raises ModelSpecError: a spec is invalid (naming the file and key), or two specs define the same object.
    """
    from mlops_provider.exceptions import ModelSpecError
    from mlops_provider.settings import get_settings
    from mlops_provider.spec.load import load_specs

    settings = get_settings()
    objects: dict[str, Any] = {}
    for spec in load_specs(folder or settings.model_specs_folder, settings.project_root):
        for name, obj in spec_objects(spec, data_root).items():
            if name in objects:
                raise ModelSpecError(f"{spec.path}: Feast object {name!r} is defined by another spec too.", key="name")
            objects[name] = obj
    return objects
