"""The model's feature matrix for entity rows, from Feast's online store: shared by the transformer and fused mode.

:class:`OnlineFeatures` resolves the model's FeatureService once (its feature views, on-demand views, entity keys
and request fields) and then answers each request with one read per feature view for the whole batch, runs the
service's Python on-demand transformations on the batch, and writes the values straight into the float32 matrix in
the booster's feature order.

The read of Feast's SQLite online store (the local default) is :class:`SqliteOnlineRows`: one ``SELECT`` for all
of a view's entity keys on a long-lived connection, the keys serialized once by Feast's own
``serialize_entity_key``, only the requested values decoded. Every other online store (Redis, DynamoDB...) is read
through its ``OnlineStore.online_read``. Both answer what ``FeatureStore.get_online_features`` answers
(``tests/integration/serving/test_online_read.py``), which spends most of a request in Python around the read
(resolving the service from the registry, Value protos for every request field and every on-demand output, the
response proto and its conversion back); ``benchmarks/serving.py`` times both (its ``lookup`` lines).
Definitions the direct read does not cover (pandas or substrait on-demand views, on-demand views written to the
online store or with aggregations, pre-computed services, versioned projections) are read through
``get_online_features``, with the same result.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from kserve.errors import InferenceError, InvalidInput

from mlops_serving.predictor import category_code, model_categories
from mlops_serving.storage import find_model_file, resolve_model_dir

logger = logging.getLogger(__name__)

#: Feast types whose request values pass to an on-demand transformation as they are (no proto round trip changes
#: them once :meth:`OnlineFeatures.coerce` has converted them).
_PLAIN_TYPES = {"Int64", "Int32", "Float64", "String", "Bool"}
#: Value proto fields that hold a plain Python scalar.
_SCALAR_KINDS = {"int64_val", "int32_val", "double_val", "float_val", "string_val", "bool_val", "bytes_val"}
#: The Value proto field of an entity key's Feast type.
_KEY_KINDS = {"INT64": "int64_val", "INT32": "int32_val", "STRING": "string_val", "BYTES": "bytes_val"}
#: Serialized entity keys remembered per feature view before the memo starts over (bounds its memory).
_MAX_REMEMBERED_KEYS = 100_000
#: Decoded stored values remembered before the memo starts over (bounds its memory).
_MAX_REMEMBERED_VALUES = 200_000
#: Entities whose online rows the direct SQLite read keeps between requests (until the store changes).
_MAX_REMEMBERED_ENTITIES = 100_000
#: Python types of decoded values the memo may share between requests (immutable).
_IMMUTABLE = (type(None), int, float, str, bool, bytes, datetime)


@dataclass
class _ViewRead:
    """One feature view read per request: the view (with the service's projection), its keys and features."""

    view: Any
    #: ``(request field, join key, Value proto field or None, ValueType)`` of each join key.
    keys: list[tuple[str, str, str | None, Any]]
    features: list[str]
    #: Name of each feature in the answer (``<view>__<feature>`` with full feature names).
    output_names: dict[str, str] = field(default_factory=dict)
    #: Whether a missing entity here is an unknown entity (the service itself reads this view).
    in_service: bool = True
    #: The view's table in the online store (the direct SQLite read).
    table_id: str = ""
    #: ``serialize_entity_key`` of the key values seen so far (a pure function of them).
    serialized_keys: dict[tuple, bytes] = field(default_factory=dict)


@dataclass
class _Transformation:
    """A Python on-demand feature view of the service and the answer names of the features it outputs."""

    odfv: Any
    output_names: dict[str, str]
    #: Source features (short names) the transformation reads, per source view name.
    sources: dict[str, list[str]]
    #: ``(<source view>__<feature>, <feature>)`` of each source feature: the names the UDF may read it under.
    aliases: list[tuple[str, str]] = field(init=False)

    def __post_init__(self) -> None:
        self.aliases = [
            (f"{projection.name}__{feature.name}", feature.name)
            for projection in self.odfv.source_feature_view_projections.values()
            for feature in projection.features
        ]

    def transform(self, inputs: dict[str, list]) -> dict[str, Any]:
        """``OnDemandFeatureView.transform_dict`` of a Python-mode view, step for step, without the run-time type
        checks Feast's class decorator wraps it in (half the CPU of a one-row lookup)."""
        prepared = dict(inputs)
        added = []
        for full_name, short_name in self.aliases:  # each source feature under both names, as Feast hands it over
            if full_name in inputs:
                prepared[short_name] = inputs[full_name]
                added.append(short_name)
            elif short_name in inputs:
                prepared[full_name] = inputs[short_name]
                added.append(full_name)
        udf = self.odfv.feature_transformation
        if self.odfv.singleton:
            # Feast's transform_dict hands a singleton view the first row only; every row is scored, so each row
            # is transformed on its own.
            n = len(next(iter(prepared.values()), []))
            rows = [udf.transform_singleton({k: v[i : i + 1] for k, v in prepared.items()}) for i in range(n)]
            outputs = {k: [row[k] for row in rows] for k in (rows[0] if rows else {})}
        else:
            outputs = udf.transform(prepared)
        for name in added:
            outputs.pop(name, None)
        return outputs


def model_inputs(storage_uri: str, tracking_uri: str | None = None) -> tuple[list[str], dict[str, list[str]]]:
    """Read the booster's feature order and the frozen categories of its categorical features."""
    import xgboost as xgb

    model_file = find_model_file(Path(resolve_model_dir(storage_uri, tracking_uri=tracking_uri)))
    booster = xgb.Booster(model_file=str(model_file))
    if not booster.feature_names:
        raise ValueError(
            f"The model at {storage_uri} has no feature names; train it from a DataFrame or pass --feature_names."
        )
    return list(booster.feature_names), model_categories(booster)


def open_online_features(
    model_name: str,
    *,
    feast_repo_path: str,
    feature_service: str,
    feast_config: str | None = None,
    storage_uri: str | None = None,
    feature_names: list[str] | None = None,
    codes: dict[str, dict[str, int]] | None = None,
    tracking_uri: str | None = None,
    max_batch_size: int = 1000,
    reject_unknown_entities: bool = True,
) -> OnlineFeatures:
    """Open the feature store and resolve the FeatureService for a model's feature order and categories.

    The order is ``feature_names`` or the booster's at ``storage_uri``; the categories (``{feature: {category:
    code}}``) are ``codes`` when the caller has loaded the model already, else read from ``storage_uri``.
    """
    if codes is None:
        codes = {}
        if storage_uri:
            names, categories = model_inputs(storage_uri, tracking_uri)
            feature_names = feature_names or names
            codes = {name: {c: i for i, c in enumerate(cats)} for name, cats in categories.items()}
    if not feature_names:
        raise ValueError("The feature lookup needs the model's feature order: pass --storage_uri or --feature_names.")
    online = OnlineFeatures.open(
        feast_repo_path,
        feature_service,
        feature_names,
        codes,
        feast_config=feast_config,
        max_batch_size=max_batch_size,
        reject_unknown_entities=reject_unknown_entities,
    )
    logger.info(
        "Features of %s: FeatureService %s, entity keys %s, request fields %s, %d model features, %s",
        model_name,
        feature_service,
        online.entity_keys,
        online.request_fields,
        len(feature_names),
        f"read through get_online_features ({online.indirect_reason})"
        if online.indirect_reason
        else "one online read per feature view per request",
    )
    return online


class OnlineFeatures:
    """Look up the model's features for entity rows in Feast's online store, one read per feature view per batch.

    :param store: the ``feast.FeatureStore``.
    :param feature_service: name of the model's FeatureService.
    :param feature_names: the booster's feature order (the matrix columns).
    :param codes: ``{feature: {category: code}}`` of the model's categorical features.
    :param max_batch_size: largest number of instances per request.
    :param reject_unknown_entities: raise ``InvalidInput`` for an entity the online store has never seen; False
        gives it missing (NaN) features.
    """

    def __init__(
        self,
        store: Any,
        feature_service: str,
        feature_names: list[str],
        codes: dict[str, dict[str, int]],
        *,
        max_batch_size: int = 1000,
        reject_unknown_entities: bool = True,
    ) -> None:
        self.store = store
        self.feature_service_name = feature_service
        self.feature_names = feature_names
        self.codes = codes
        self.max_batch_size = max_batch_size
        self.reject_unknown_entities = reject_unknown_entities
        self.service = store.get_feature_service(feature_service)
        #: Entity keys and request fields an entity request carries, and the Feast type of each.
        self.entity_keys: list[str] = []
        self.request_fields: list[str] = []
        self.types: dict[str, str] = {}
        #: Feast ``ValueType`` of each request field the service declares.
        self._value_types: dict[str, Any] = {}
        self._regular_views: set[str] = set()
        self._feast_request_fields: list[str] = []
        self._view_of_feature: dict[str, str] = {}
        self._entity_views: set[str] = set()
        self.full_feature_names = False
        self._resolve()
        self._reads: list[_ViewRead] = []
        self._transformations: list[_Transformation] = []
        self.online_store: Any = None
        #: Feast's SQLite online store read directly (None: another online store, read through ``online_read``).
        self.direct_reader: SqliteOnlineRows | None = None
        #: Why the service is read through ``get_online_features`` (None: read directly).
        self.indirect_reason = self._plan_direct_reads()

    @classmethod
    def open(
        cls,
        feast_repo_path: str,
        feature_service: str,
        feature_names: list[str],
        codes: dict[str, dict[str, int]],
        *,
        feast_config: str | None = None,
        **options: Any,
    ) -> OnlineFeatures:
        """Open the feature store at ``feast_repo_path`` (or the resolved ``feast_config``) and resolve the service."""
        from feast import FeatureStore

        if feast_config:
            store = FeatureStore(repo_path=feast_repo_path, fs_yaml_file=Path(feast_config))
        else:
            store = FeatureStore(repo_path=feast_repo_path)
        return cls(store, feature_service, feature_names, codes, **options)

    # -- resolution ------------------------------------------------------------------------------------------------
    def _resolve(self) -> None:
        """Find the service's entity keys, request fields and where each model feature comes from."""
        store = self.store
        entity_keys: list[str] = []
        request_fields: list[str] = []
        short_names: dict[str, str] = {}
        full_names: dict[str, str] = {}
        for projection in self.service.feature_view_projections:
            view_name = projection.name_to_use()
            try:
                view = store.get_feature_view(projection.name)
                self._entity_views.add(view_name)
                self._regular_views.add(projection.name)
                for column in view.entity_columns:
                    if column.name not in entity_keys:
                        entity_keys.append(column.name)
                        self.types[column.name] = str(column.dtype)
            except Exception:  # not a regular feature view: an on-demand one computed from request fields
                odfv = store.get_on_demand_feature_view(projection.name)
                for source in odfv.source_request_sources.values():
                    for request_field in source.schema:
                        if request_field.name not in request_fields:
                            request_fields.append(request_field.name)
                            self.types[request_field.name] = str(request_field.dtype)
                            self._value_types[request_field.name] = request_field.dtype.to_value_type()
                for source_view in odfv.source_feature_view_projections.values():
                    for key in store.get_feature_view(source_view.name).join_keys:
                        if key not in entity_keys:
                            entity_keys.append(key)
            for feature in projection.features:
                short_names[feature.name] = view_name
                full_names[f"{view_name}__{feature.name}"] = view_name
        self.entity_keys = entity_keys
        self.request_fields = request_fields
        self._feast_request_fields = list(request_fields)
        in_full = sum(name in full_names for name in self.feature_names)
        in_short = sum(name in short_names for name in self.feature_names)
        self.full_feature_names = in_full > in_short
        self._view_of_feature = full_names if self.full_feature_names else short_names
        from_request = [n for n in self.feature_names if n not in self._view_of_feature]
        unresolvable = [n for n in from_request if n not in self.request_fields and n not in self.entity_keys]
        # Model features that are neither Feast features nor declared request fields must come with the request.
        self.request_fields.extend(n for n in unresolvable if n not in self.request_fields)

    def _plan_direct_reads(self) -> str | None:
        """Plan one ``online_read`` per view; return why the service cannot be read directly (None if it can)."""
        from feast.infra.online_stores.helpers import get_online_store_from_config

        if getattr(self.service, "precompute_online", False):
            return "its vectors are pre-computed"
        store = self.store
        reads: dict[str, _ViewRead] = {}
        transformations: list[_Transformation] = []

        def output_name(view_name: str, feature: str) -> str:
            return f"{view_name}__{feature}" if self.full_feature_names else feature

        def view_read(projection: Any, in_service: bool) -> _ViewRead:
            view = store.get_feature_view(projection.name).with_projection(projection)
            read = reads.get(projection.name_to_use())
            if read is None:
                keys = []
                for column in view.entity_columns:
                    value_type = column.dtype.to_value_type()
                    request_name = projection.join_key_map.get(column.name, column.name)
                    keys.append((request_name, column.name, _KEY_KINDS.get(value_type.name), value_type))
                read = reads[projection.name_to_use()] = _ViewRead(view, keys, [], in_service=in_service)
            read.in_service = read.in_service or in_service
            return read

        for projection in self.service.feature_view_projections:
            if getattr(projection, "version_tag", None) is not None:
                return f"its projection of {projection.name} is versioned"
            if projection.name in self._regular_views:
                read = view_read(projection, in_service=True)
                for feature in projection.features:
                    if feature.name not in read.features:
                        read.features.append(feature.name)
                    read.output_names[feature.name] = output_name(projection.name_to_use(), feature.name)
                continue
            odfv = store.get_on_demand_feature_view(projection.name)
            if odfv.mode != "python" or odfv.write_to_online_store or odfv.aggregations:
                return f"its on-demand view {projection.name} is not a Python transformation computed per request"
            sources: dict[str, list[str]] = {}
            for source in odfv.source_feature_view_projections.values():
                read = view_read(source, in_service=False)
                names = [f.name for f in source.features]
                read.features.extend(n for n in names if n not in read.features)
                sources[source.name_to_use()] = names
            outputs = {f.name: output_name(projection.name_to_use(), f.name) for f in projection.features}
            transformations.append(_Transformation(odfv.with_projection(projection), outputs, sources))
        self._reads = list(reads.values())
        self._transformations = transformations
        self.online_store = get_online_store_from_config(store.config.online_store)
        self.direct_reader = SqliteOnlineRows.for_store(store.config, self.online_store)
        if self.direct_reader is not None:
            from feast.infra.online_stores.helpers import compute_table_id

            versioned = store.config.registry.enable_online_feature_view_versioning
            for read in self._reads:
                read.table_id = compute_table_id(store.config.project, read.view, versioned)
        return None

    # -- requests ------------------------------------------------------------------------------------------------
    def coerce(self, field_name: str, value: Any, index: int) -> Any:
        """Convert a request value to the type the feature definitions declare (JSON has no timestamps)."""
        kind = self.types.get(field_name, "")
        try:
            return _converter(kind)(value)
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidInput(f"Instance {index}: field '{field_name}' must be {kind or 'valid'}: {exc}") from None

    def entity_rows(self, rows: list[dict]) -> list[dict]:
        """Check the batch and each row's fields; return the rows with their values in the declared types."""
        if not rows:
            raise InvalidInput("The request has no instances.")
        if len(rows) > self.max_batch_size:
            raise InvalidInput(
                f"Batch of {len(rows)} instances exceeds the maximum batch size of {self.max_batch_size}."
            )
        required = self.entity_keys + self.request_fields
        # A categorical model input that only the model reads (not an entity key, not a Feast request field) may be
        # null: it is missing, as in training.
        optional = {f for f in self.codes if f not in self.entity_keys and f not in self._feast_request_fields}
        for i, row in enumerate(rows):
            missing = [name for name in required if row.get(name) is None and name not in optional]
            if missing:
                raise InvalidInput(
                    f"Instance {i} is missing field(s) {missing}; an entity request needs {self.entity_keys} "
                    f"and the request fields {self.request_fields}."
                )
        converters = [(name, _converter(self.types.get(name, ""))) for name in required]
        coerced: list[dict] = []
        for i, row in enumerate(rows):
            values = {}
            for name, convert in converters:
                value = row.get(name)
                if value is not None:
                    try:
                        values[name] = convert(value)
                    except (TypeError, ValueError, OverflowError):
                        self.coerce(name, value, i)  # raises the error that names the instance and the field
            coerced.append(values)
        return coerced

    def matrix(self, rows: list[dict]) -> np.ndarray:
        """Return the float32 feature matrix ``[n, n_features]`` for entity rows (model feature order)."""
        entity_rows = self.entity_rows(rows)
        columns = self._read_through_feast(rows, entity_rows) if self.indirect_reason else self._read(rows, entity_rows)
        matrix = np.empty((len(rows), len(self.feature_names)), dtype=np.float32)
        for col, feature in enumerate(self.feature_names):
            values = columns.get(feature)  # None: a request field or an entity key that is a model input
            if values is not None and len(values) != len(rows):
                raise InferenceError(
                    f"The feature lookup answered {len(values)} value(s) of '{feature}' for {len(rows)} instances "
                    "(Feast's get_online_features computes a singleton on-demand view for the first row only); "
                    "send one instance per request, or make the view a batch (non-singleton) transformation."
                )
            if feature in self.codes:  # its code; an unseen value or a null is missing
                source = values if values is not None else [row.get(feature) for row in rows]
                matrix[:, col] = [category_code(v, self.codes[feature]) for v in source]
            elif values is not None:
                try:
                    matrix[:, col] = np.asarray(values, dtype=np.float64)  # None -> NaN
                except (TypeError, ValueError):
                    bad = next((v for v in values if isinstance(v, bytes | str)), values)
                    raise InvalidInput(
                        f"Feature value {bad!r} is not numeric; the feature service must serve numeric features."
                    ) from None
            else:
                try:
                    matrix[:, col] = [float(row[feature]) for row in rows]
                except (KeyError, TypeError, ValueError) as exc:
                    raise InvalidInput(f"Model feature '{feature}' must be a number in every instance: {exc}") from None
        return matrix

    def _unknown_entity(self, index: int, view: str, rows: list[dict]) -> InvalidInput:
        keys = {k: rows[index].get(k) for k in self.entity_keys}
        return InvalidInput(
            f"Unknown entity in instance {index}: no online features in '{view}' for {keys}. "
            "Is the entity new, or are the features not materialized yet?"
        )

    def _read(self, rows: list[dict], entity_rows: list[dict]) -> dict[str, list]:
        """Read each view once for the batch's distinct entities; run the transformations on the batch."""
        n = len(rows)
        columns: dict[str, list] = {}
        source_values: dict[str, dict[str, list]] = {}
        for read in self._reads:
            request_names = [k[0] for k in read.keys]
            positions: dict[tuple, list[int]] = {}
            for i, row in enumerate(entity_rows):
                positions.setdefault(tuple([row.get(name) for name in request_names]), []).append(i)
            found = self._read_view(read, list(positions))
            view_name = read.view.projection.name_to_use()
            values_of = {feature: [None] * n for feature in read.features}
            for features, indexes in zip(found, positions.values(), strict=True):
                if features is None:
                    if read.in_service and self.reject_unknown_entities:
                        raise self._unknown_entity(indexes[0], view_name, rows)
                    continue
                for feature, value in features.items():
                    column = values_of[feature]
                    for i in indexes:
                        column[i] = value
            source_values[view_name] = values_of
            for feature, name in read.output_names.items():
                columns[name] = values_of[feature]
        for transformation in self._transformations:
            inputs: dict[str, list] = {}
            for name in self._feast_request_fields:
                values = [row.get(name) for row in entity_rows]
                if self.types.get(name) not in _PLAIN_TYPES:  # as Feast hands them over: through a Value proto
                    values = self._as_feast_hands_over(name, values)
                inputs[name] = values
            for key in self.entity_keys:
                inputs[key] = [row.get(key) for row in entity_rows]
            for view_name, names in transformation.sources.items():
                for name in names:
                    inputs[name] = source_values[view_name][name]
            outputs = transformation.transform(inputs)
            for feature, name in transformation.output_names.items():
                values = outputs[feature]
                columns[name] = values if isinstance(values, list) else [values]
        return columns

    def _as_feast_hands_over(self, name: str, values: list) -> list:
        """``values`` through a Feast ``Value`` proto and back, converting each distinct value once (a batch's
        requests mostly share their timestamp)."""
        from feast.type_map import python_values_to_proto_values

        try:
            distinct = list(dict.fromkeys(values))
        except TypeError:  # unhashable (list-valued) fields: each one converted
            return [_python_value(p) for p in python_values_to_proto_values(values, self._value_types[name])]
        protos = python_values_to_proto_values(distinct, self._value_types[name])
        converted = {value: _python_value(proto) for value, proto in zip(distinct, protos, strict=True)}
        return [converted[value] for value in values]

    def _read_view(self, read: _ViewRead, key_values: list[tuple]) -> list[dict[str, Any] | None]:
        """The requested features of each entity (``None``: not in the online store), in ``key_values`` order."""
        if self.direct_reader is not None:
            return self.direct_reader.read(
                read.table_id, [self._serialized_key(read, k) for k in key_values], read.features
            )
        entity_keys = [self._entity_key(read, k) for k in key_values]
        found = self.online_store.online_read(self.store.config, read.view, entity_keys, read.features)
        return [
            None if features is None else {f: _python_value(features[f]) for f in read.features if f in features}
            for _, features in found
        ]

    @staticmethod
    def _entity_key(read: _ViewRead, key_values: tuple) -> Any:
        """The ``EntityKey`` proto of one entity of ``read``'s view."""
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value
        from feast.type_map import python_values_to_proto_values

        protos = [
            python_values_to_proto_values([value], value_type)[0] if kind is None else Value(**{kind: value})
            for value, (_, _, kind, value_type) in zip(key_values, read.keys, strict=True)
        ]
        return EntityKey(join_keys=[k[1] for k in read.keys], entity_values=protos)

    def _serialized_key(self, read: _ViewRead, key_values: tuple) -> bytes:
        """The entity key as Feast stores it (its own ``serialize_entity_key``), remembered: it never changes."""
        serialized = read.serialized_keys.get(key_values)
        if serialized is None:
            from feast.infra.key_encoding_utils import serialize_entity_key

            if len(read.serialized_keys) >= _MAX_REMEMBERED_KEYS:
                read.serialized_keys.clear()
            serialized = read.serialized_keys[key_values] = serialize_entity_key(
                self._entity_key(read, key_values),
                entity_key_serialization_version=self.store.config.entity_key_serialization_version,
            )
        return serialized

    def _read_through_feast(self, rows: list[dict], entity_rows: list[dict]) -> dict[str, list]:
        """Read through ``FeatureStore.get_online_features`` (definitions the direct read does not cover)."""
        from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

        try:
            response = self.store.get_online_features(
                features=self.service, entity_rows=entity_rows, full_feature_names=self.full_feature_names
            )
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"Invalid entity request: {exc}") from None
        proto = response.proto
        columns: dict[str, list] = {}
        for name, result in zip(proto.metadata.feature_names.val, proto.results, strict=True):
            view = self._view_of_feature.get(name)
            if view is None:
                continue
            if self.reject_unknown_entities and view in self._entity_views:
                for i, status in enumerate(result.statuses):
                    if status == FieldStatus.NOT_FOUND:
                        raise self._unknown_entity(i, view, rows)
            columns[name] = [_python_value(v) for v in result.values]
        return columns


class SqliteOnlineRows:
    """Feast's SQLite online store read directly: one ``SELECT`` per view per batch on one long-lived connection.

    The rows and their meaning are Feast's (``SqliteOnlineStore.online_read`` reads the same ``SELECT``): an entity
    is present when its key has rows, a requested feature without a row is null. What it skips is Feast's work
    around them that the lookup never uses: the ``EntityKey`` protos and serialization per request (the caller
    remembers them), the ``event_ts`` column parsed into a ``datetime`` per value (the online path applies no TTL;
    ``get_online_features`` answers expired rows as present), and decoding features nobody asked for.

    An entity's decoded features are kept until the database changes: SQLite's ``PRAGMA data_version`` changes
    whenever another connection (a materialization, ``write_to_online_store``) commits, and every read checks it
    first, so a read never answers rows older than the last commit. Only entities not kept are selected.

    :param path: the online store's database file.
    :param max_entities: entities kept between reads (0: none, every read selects).
    """

    def __init__(self, path: str, max_entities: int = _MAX_REMEMBERED_ENTITIES) -> None:
        from feast.protos.feast.types.Value_pb2 import Value

        self.path = path
        self.max_entities = max_entities
        self._parse_value = Value.FromString
        #: The Python value of each stored Value blob seen so far: a pure function of the bytes, so it never goes stale.
        self._decoded: dict[bytes, Any] = {}
        self._connection: sqlite3.Connection | None = None
        self._sql: dict[tuple[str, int], str] = {}
        #: Per (table, features): each entity key's features (None: no row), as of ``_data_version``.
        self._entities: dict[tuple[str, tuple[str, ...]], dict[bytes, dict[str, Any] | None]] = {}
        self._kept = 0
        self._data_version: int | None = None

    @classmethod
    def for_store(cls, config: Any, online_store: Any) -> SqliteOnlineRows | None:
        """The direct reader of a plain SQLite online store (None: another store, or sqlite-vec vector search on)."""
        from feast.infra.online_stores.sqlite import SqliteOnlineStore

        if type(online_store) is not SqliteOnlineStore or getattr(config.online_store, "vector_enabled", False):
            return None
        return cls(SqliteOnlineStore._get_db_path(config))

    def connection(self) -> sqlite3.Connection:
        """The read-only connection, opened on first use (a server that forks workers opens one per worker)."""
        if self._connection is None:
            # Autocommit reads: each SELECT sees what a materialization committed before it.
            self._connection = sqlite3.connect(
                f"{Path(self.path).resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False
            )
        return self._connection

    def read(self, table_id: str, keys: list[bytes], features: list[str]) -> list[dict[str, Any] | None]:
        """The ``features`` of each serialized entity key in ``table_id`` (None: no row), in ``keys`` order.

        The answers are shared with later reads: callers must not change them.
        """
        if self.max_entities <= 0:
            return self._select(table_id, keys, features)
        version = self.connection().execute("PRAGMA data_version").fetchone()[0]
        if version != self._data_version:
            self._entities.clear()
            self._kept, self._data_version = 0, version
        kept = self._entities.setdefault((table_id, tuple(features)), {})
        missing = [key for key in dict.fromkeys(keys) if key not in kept]
        if missing:
            if self._kept + len(missing) > self.max_entities:
                self._entities.clear()
                self._kept = 0
                kept = self._entities[(table_id, tuple(features))] = {}
            kept.update(zip(missing, self._select(table_id, missing, features), strict=True))
            self._kept += len(missing)
        return [kept[key] for key in keys]

    def _select(self, table_id: str, keys: list[bytes], features: list[str]) -> list[dict[str, Any] | None]:
        sql = self._sql.get((table_id, len(keys)))
        if sql is None:
            quoted = '"' + table_id.replace('"', '""') + '"'
            sql = self._sql[(table_id, len(keys))] = (
                f"SELECT entity_key, feature_name, value FROM {quoted} WHERE entity_key IN ({','.join('?' * len(keys))})"
            )
        wanted = set(features)
        found: dict[bytes, dict[str, Any]] = {}
        decoded = self._decoded
        for key, name, blob in self.connection().execute(sql, keys):
            values = found.get(key)
            if values is None:
                values = found[key] = {}
            if name in wanted:
                value = decoded.get(blob, _UNSEEN)
                if value is _UNSEEN:
                    value = self._decode(blob)
                values[name] = value
        return [found.get(key) for key in keys]

    def _decode(self, blob: bytes) -> Any:
        """The Python value of a stored Value blob, remembered when it is immutable."""
        value = _python_value(self._parse_value(blob))
        if isinstance(value, _IMMUTABLE):
            if len(self._decoded) >= _MAX_REMEMBERED_VALUES:
                self._decoded.clear()
            self._decoded[blob] = value
        return value


_UNSEEN = object()


def _to_int(value: Any) -> int:
    if type(value) is int:
        return value
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(f"{value!r} is not an integer")
    return int(value)


def _to_string(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a string")
    return value


def _to_timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value.strip().lstrip("-").replace(".", "", 1).isdigit():
        value = float(value)  # epoch seconds sent as text (e.g. a V2 BYTES tensor)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, tz=UTC)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _unchanged(value: Any) -> Any:
    return value


def _converter(kind: str) -> Any:
    """The function that converts a request value to the Feast type ``kind`` (raises ValueError or TypeError)."""
    if "Int" in kind:
        return _to_int
    if "Float" in kind:
        return float
    if "String" in kind:
        return _to_string
    if "Bool" in kind:
        return bool
    if "UnixTimestamp" in kind:
        return _to_timestamp
    return _unchanged


def _python_value(value: Any) -> Any:
    """The Python value of a Feast ``Value`` proto (None for a null), as ``get_online_features`` answers it."""
    kind = value.WhichOneof("val")
    if kind is None or kind == "null_val":
        return None
    if kind in _SCALAR_KINDS:
        return getattr(value, kind)
    from feast.type_map import feast_value_type_to_python_type

    return feast_value_type_to_python_type(value)
