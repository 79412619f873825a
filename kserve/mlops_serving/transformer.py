"""Feast transformer: turn an entity request into the model's feature vector, then call the predictor.

Clients send the entity keys and the request's own fields; the transformer reads the entity features
from Feast's online store through the model's FeatureService (``<feature_service>``, named in the model's
training-set manifest: the same definitions the training set was built from, so there is no training/serving skew), orders them as the booster expects
(``Booster.feature_names``) and forwards one FP32 tensor ``input-0`` ``[n, n_features]`` to the predictor
over V2 REST (or gRPC).

Entity request forms:

* V1: ``{"instances": [{"<entity_key>": 17, "<request_field>": 12.5, ...}, ...]}``; answered in V1.
* V2: one ``[n]`` tensor per field (an ``<entity_key>`` INT64, a numeric ``<request_field>`` FP64, a string one
  BYTES, ...); answered in V2.

Categorical features (string features of the model, see the predictor) are mapped to their codes through the
model's frozen categories, whether they come from Feast (a ``String`` feature) or from the request (a request
field, or an entity key that is also a model input); an unseen value or a null is missing (NaN), never an error.

A V2 request that already carries the features is passed to the predictor without a Feast lookup, so the same
endpoint serves both: one numeric ``[n, n_features]`` input (categorical columns as codes), or the predictor's
column form (one ``[n]`` tensor per model feature, by name, categoricals as ``BYTES`` strings). Unknown entities (no online row), missing fields and
oversized batches are answered with HTTP 400 and a message naming the offending instance.

Every request is counted in the Prometheus metrics on ``/metrics`` with ``component="transformer"`` and the
version that answered it (the predictor's ``model_version``; see :mod:`mlops_serving.metrics`).
"""

from __future__ import annotations

import contextvars
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from kserve.errors import InvalidInput
from kserve.model import InferenceVerb, Model
from kserve.protocol.infer_type import InferInput, InferRequest, InferResponse

from mlops_serving.metrics import ServingMetrics
from mlops_serving.predictor import (
    BIAS_OUTPUT_NAME,
    CLASS_OUTPUT_NAME,
    CLASSES_OUTPUT_NAME,
    CONTRIBUTIONS_OUTPUT_NAME,
    INPUT_NAME,
    NUMERIC_DATATYPES,
    OUTPUT_NAME,
    category_code,
    matrix_from_columns,
    model_categories,
    request_id_of,
    v1_explanations,
)
from mlops_serving.storage import find_model_file, resolve_model_dir

logger = logging.getLogger(__name__)

# Whether the current request came in as V1 (answer in V1) -- set in preprocess, read in postprocess.
_V1_REQUEST: contextvars.ContextVar[bool] = contextvars.ContextVar("v1_request", default=False)


def feature_names_from_model(storage_uri: str, tracking_uri: str | None = None) -> list[str]:
    """Read the booster's feature order from the model at ``storage_uri``."""
    return model_inputs(storage_uri, tracking_uri)[0]


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


class FeastTransformer(Model):
    """Look up online features for entity requests and forward the feature tensor to the predictor.

    :param name: model name (the predictor's name; the transformer serves the same path).
    :param feast_repo_path: Feast repository (``feature_store.yaml``) whose online store holds the features.
    :param feast_config: a resolved ``feature_store.yaml`` used instead of the repository's own.
    :param feature_service: FeatureService with the model's features.
    :param storage_uri: the model, to read its feature order from (or pass ``feature_names``).
    :param feature_names: the model's feature order.
    :param max_batch_size: largest number of instances per request.
    :param reject_unknown_entities: answer 400 for an entity the online store has never seen; False scores it
        with missing (null) features, which XGBoost handles as missing values.
    """

    def __init__(
        self,
        name: str,
        *,
        feast_repo_path: str,
        feast_config: str | None = None,
        feature_service: str,
        storage_uri: str | None = None,
        feature_names: list[str] | None = None,
        max_batch_size: int = 1000,
        tracking_uri: str | None = None,
        reject_unknown_entities: bool = True,
    ) -> None:
        super().__init__(name)
        self.feast_repo_path = feast_repo_path
        self.feast_config = feast_config
        self.feature_service_name = feature_service
        self.storage_uri = storage_uri
        self.feature_names = feature_names
        self.max_batch_size = max_batch_size
        self.tracking_uri = tracking_uri
        self.store: Any = None
        self._feature_service: Any = None
        self.entity_keys: list[str] = []
        self.request_fields: list[str] = []
        self._view_of_feature: dict[str, str] = {}
        self._entity_views: set[str] = set()
        self._full_feature_names = False
        self._types: dict[str, str] = {}
        self.reject_unknown_entities = reject_unknown_entities
        #: ``{feature: {category: code}}`` of the model's categorical features (read with its feature order).
        self._codes: dict[str, dict[str, int]] = {}
        self._feast_request_fields: list[str] = []
        self.metrics = ServingMetrics(name, "transformer")
        #: The version the predictor answered with last: the label of an error that no predictor answered.
        self.answered_version = "unknown"

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def load(self) -> bool:
        """Open the feature store, resolve the FeatureService and the model's feature order."""
        from feast import FeatureStore

        if not self.feature_names:
            if not self.storage_uri:
                raise ValueError(
                    "The transformer needs the model's feature order: pass --storage_uri or --feature_names."
                )
            self.feature_names, categories = model_inputs(self.storage_uri, self.tracking_uri)
            self._codes = {name: {c: i for i, c in enumerate(cats)} for name, cats in categories.items()}
        elif self.storage_uri:  # the order is given; the categories still come from the model
            categories = model_inputs(self.storage_uri, self.tracking_uri)[1]
            self._codes = {name: {c: i for i, c in enumerate(cats)} for name, cats in categories.items()}
        if self.feast_config:
            self.store = FeatureStore(repo_path=self.feast_repo_path, fs_yaml_file=Path(self.feast_config))
        else:
            self.store = FeatureStore(repo_path=self.feast_repo_path)
        self._feature_service = self.store.get_feature_service(self.feature_service_name)
        entity_keys: list[str] = []
        request_fields: list[str] = []
        short_names: dict[str, str] = {}
        full_names: dict[str, str] = {}
        for projection in self._feature_service.feature_view_projections:
            view_name = projection.name_to_use()
            try:
                view = self.store.get_feature_view(projection.name)
                self._entity_views.add(view_name)
                for column in view.entity_columns:
                    if column.name not in entity_keys:
                        entity_keys.append(column.name)
                        self._types[column.name] = str(column.dtype)
            except Exception:  # not a regular feature view: an on-demand one computed from request fields
                odfv = self.store.get_on_demand_feature_view(projection.name)
                for source in odfv.source_request_sources.values():
                    for field in source.schema:
                        if field.name not in request_fields:
                            request_fields.append(field.name)
                            self._types[field.name] = str(field.dtype)
                for source_view in odfv.source_feature_view_projections.values():
                    for key in self.store.get_feature_view(source_view.name).join_keys:
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
        self._full_feature_names = in_full > in_short
        self._view_of_feature = full_names if self._full_feature_names else short_names
        from_request = [n for n in self.feature_names if n not in self._view_of_feature]
        unresolvable = [n for n in from_request if n not in self.request_fields and n not in self.entity_keys]
        # Model features that are neither Feast features nor declared request fields must come with the request.
        self.request_fields.extend(n for n in unresolvable if n not in self.request_fields)
        logger.info(
            "Transformer for %s: FeatureService %s, entity keys %s, request fields %s, %d model features",
            self.name,
            self.feature_service_name,
            self.entity_keys,
            self.request_fields,
            len(self.feature_names),
        )
        # One lookup now, so the first request does not pay for the registry load.
        self.ready = True
        return self.ready

    # -- metadata ------------------------------------------------------------------------------------------------
    def get_input_types(self) -> list[dict]:
        """V2 metadata: the feature tensor it passes through, then the entity request's fields."""
        datatypes = {"Int64": "INT64", "Int32": "INT32", "Float64": "FP64", "Float32": "FP32", "Bool": "BOOL"}
        fields = [
            {"name": name, "datatype": datatypes.get(self._types.get(name, ""), "BYTES"), "shape": [-1]}
            for name in self.entity_keys + self.request_fields
        ]
        return [{"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, len(self.feature_names or [])]}, *fields]

    def get_output_types(self) -> list[dict]:
        """V2 metadata: the predictor's ``output-0`` (a multiclass predictor adds ``class``; see its metadata)."""
        return [{"name": "output-0", "datatype": "FP32", "shape": [-1]}]

    # -- request decoding ----------------------------------------------------------------------------------------
    def _rows_from_v1(self, payload: dict) -> list[dict]:
        instances = payload.get("instances")
        if not isinstance(instances, list) or not all(isinstance(row, dict) for row in instances):
            raise InvalidInput(
                'Expected "instances": a list of objects with the entity keys '
                f"{self.entity_keys} and the request fields {self.request_fields}."
            )
        return instances

    def _rows_from_v2(self, request: InferRequest) -> list[dict]:
        columns: dict[str, list] = {}
        for tensor in request.inputs:
            try:
                values = tensor.as_numpy().reshape(-1)
            except ValueError as exc:
                raise InvalidInput(
                    f"Input '{tensor.name}' data does not match its shape {list(tensor.shape)}: {exc}"
                ) from None
            if tensor.datatype == "BYTES":
                values = [v.decode() if isinstance(v, bytes) else v for v in values]
            columns[tensor.name] = list(values)
        lengths = {len(v) for v in columns.values()}
        if len(lengths) != 1:
            raise InvalidInput(
                f"Entity request inputs have different lengths {sorted(lengths)}; all must have n values."
            )
        n = lengths.pop()
        return [{name: _plain(values[i]) for name, values in columns.items()} for i in range(n)]

    def _is_feature_tensor(self, request: InferRequest) -> bool:
        if len(request.inputs) != 1:
            return False
        tensor = request.inputs[0]
        return (
            tensor.datatype in NUMERIC_DATATYPES
            and len(tensor.shape) == 2
            and tensor.name not in self.entity_keys
            and tensor.name not in self.request_fields
        )

    def _is_feature_columns(self, request: InferRequest) -> bool:
        """Whether the request is the predictor's column form: one tensor per model feature, and not an entity request."""
        names = {t.name for t in request.inputs}
        return names == set(self.feature_names or []) and not names <= {*self.entity_keys, *self.request_fields}

    @staticmethod
    def _feature_matrix(tensor: InferInput) -> np.ndarray:
        """Return a passed-through feature tensor as float32 ``[n, n_features]``, nested or flat in JSON."""
        try:
            return np.asarray(tensor.as_numpy(), dtype=np.float32).reshape(tensor.shape)
        except (TypeError, ValueError) as error:
            raise InvalidInput(
                f"Input {tensor.name!r} does not hold {tensor.shape[0]}x{tensor.shape[1]} numbers: {error}"
            ) from None

    # -- feature lookup ------------------------------------------------------------------------------------------
    def features_for(self, rows: list[dict]) -> np.ndarray:
        """Return the float32 feature matrix ``[n, n_features]`` for entity rows (model feature order)."""
        from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

        if not rows:
            raise InvalidInput("The request has no instances.")
        if len(rows) > self.max_batch_size:
            raise InvalidInput(
                f"Batch of {len(rows)} instances exceeds the maximum batch size of {self.max_batch_size}."
            )
        required = self.entity_keys + self.request_fields
        # A categorical model input that only the model reads (not an entity key, not a Feast request field) may be
        # null: it is missing, as in training.
        optional = {f for f in self._codes if f not in self.entity_keys and f not in self._feast_request_fields}
        for i, row in enumerate(rows):
            missing = [field for field in required if row.get(field) is None and field not in optional]
            if missing:
                raise InvalidInput(
                    f"Instance {i} is missing field(s) {missing}; an entity request needs {self.entity_keys} "
                    f"and the request fields {self.request_fields}."
                )
        entity_rows = [
            {k: self._coerce(k, row[k], i) for k in required if row.get(k) is not None} for i, row in enumerate(rows)
        ]
        try:
            response = self.store.get_online_features(
                features=self._feature_service, entity_rows=entity_rows, full_feature_names=self._full_feature_names
            )
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"Invalid entity request: {exc}") from None
        proto = response.proto
        names = list(proto.metadata.feature_names.val)
        index = {name: j for j, name in enumerate(names)}
        n = len(rows)
        feature_names = self.feature_names or []  # set by load()
        matrix = np.empty((n, len(feature_names)), dtype=np.float32)
        for col, feature in enumerate(feature_names):
            if feature in index:
                result = proto.results[index[feature]]
                view = self._view_of_feature.get(feature)
                for i in range(n):
                    status = result.statuses[i]
                    if self.reject_unknown_entities and status == FieldStatus.NOT_FOUND and view in self._entity_views:
                        keys = {k: rows[i][k] for k in self.entity_keys}
                        raise InvalidInput(
                            f"Unknown entity in instance {i}: no online features in '{view}' for {keys}. "
                            "Is the entity new, or are the features not materialized yet?"
                        )
                    if feature in self._codes:
                        matrix[i, col] = category_code(_value_of(result.values[i]), self._codes[feature])
                    else:
                        matrix[i, col] = _value_to_float(result.values[i])
            elif feature in self._codes:  # a categorical request field or entity key: its code (unseen/null: NaN)
                matrix[:, col] = [category_code(row.get(feature), self._codes[feature]) for row in rows]
            else:
                try:
                    matrix[:, col] = [float(row[feature]) for row in rows]
                except (KeyError, TypeError, ValueError) as exc:
                    raise InvalidInput(f"Model feature '{feature}' must be a number in every instance: {exc}") from None
        return matrix

    def _coerce(self, field: str, value: Any, index: int) -> Any:
        """Convert a request value to the type the feature definitions declare (JSON has no timestamps)."""
        kind = self._types.get(field, "")
        try:
            if "Int" in kind:
                if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                    raise ValueError(f"{value!r} is not an integer")
                return int(value)
            if "Float" in kind:
                return float(value)
            if "String" in kind:
                if not isinstance(value, str):
                    raise ValueError(f"{value!r} is not a string")
                return value
            if "Bool" in kind:
                return bool(value)
            if "UnixTimestamp" in kind:
                if isinstance(value, str) and value.strip().lstrip("-").replace(".", "", 1).isdigit():
                    value = float(value)  # epoch seconds sent as text (e.g. a V2 BYTES tensor)
                if isinstance(value, int | float):
                    return datetime.fromtimestamp(value, tz=UTC)
                parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
                return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidInput(f"Instance {index}: field '{field}' must be {kind or 'valid'}: {exc}") from None
        return value

    # -- kserve handlers -----------------------------------------------------------------------------------------
    async def __call__(
        self, body: Any, headers: dict[str, str] | None = None, verb: InferenceVerb = InferenceVerb.PREDICT
    ) -> Any:
        """KServe's request path, counted under the version the predictor answered with."""
        started = time.perf_counter()
        try:
            answer = await super().__call__(body, headers, verb)
        except Exception as error:
            self.metrics.meter(self.answered_version).failed(error, time.perf_counter() - started)
            raise
        response = answer[0] if isinstance(answer, tuple) else answer
        version = (
            response.get("model_version") if isinstance(response, dict) else getattr(response, "model_version", None)
        )
        self.answered_version = str(version or self.answered_version)
        self.metrics.meter(self.answered_version).served(time.perf_counter() - started)
        return answer

    def preprocess(self, payload: dict | InferRequest, headers: dict[str, str] | None = None) -> InferRequest:
        """Turn the request into the predictor's V2 feature tensor (or pass a feature tensor through).

        The request id (the V2 ``id``, else ``x-request-id``, else a new one) travels to the predictor, which
        answers and logs under it.
        """
        request_id = request_id_of(payload, headers)
        if isinstance(payload, InferRequest):
            _V1_REQUEST.set(False)
            if self._is_feature_tensor(payload) or self._is_feature_columns(payload):
                matrix = (
                    self._feature_matrix(payload.inputs[0])
                    if self._is_feature_tensor(payload)
                    else matrix_from_columns({t.name: t for t in payload.inputs}, self.feature_names or [], self._codes)
                )
                # Re-encoded flat: V2 JSON may nest rows, which the gRPC hop to the predictor cannot carry.
                tensor = InferInput(name=INPUT_NAME, shape=list(matrix.shape), datatype="FP32")
                tensor.set_data_from_numpy(matrix, binary_data=False)
                return InferRequest(
                    model_name=self.name,
                    infer_inputs=[tensor],
                    request_id=request_id,
                    parameters=payload.parameters,
                )
            rows = self._rows_from_v2(payload)
        elif isinstance(payload, dict):
            _V1_REQUEST.set(True)
            rows = self._rows_from_v1(payload)
        else:
            raise InvalidInput(f"Unsupported request body of type {type(payload).__name__}.")
        matrix = self.features_for(rows)
        tensor = InferInput(name=INPUT_NAME, shape=list(matrix.shape), datatype="FP32")
        tensor.set_data_from_numpy(matrix, binary_data=False)
        parameters = payload.parameters if isinstance(payload, InferRequest) else None
        return InferRequest(model_name=self.name, infer_inputs=[tensor], request_id=request_id, parameters=parameters)

    async def explain(self, payload: InferRequest, headers: dict[str, str] | None = None) -> InferResponse:
        """V1 ``:explain``: the features looked up as for a prediction, explained by the predictor (V2 ``explain``)."""
        payload.parameters = {**(payload.parameters or {}), "explain": True}
        return await self.predict(payload, headers)

    def postprocess(
        self, result: dict | InferResponse, headers: dict[str, str] | None = None, response_headers: dict | None = None
    ) -> dict | InferResponse:
        """Answer V1 requests in V1 (the predictor's V1 shapes for each task); V2 responses pass through."""
        if _V1_REQUEST.get() and isinstance(result, InferResponse):
            outputs = {output.name: output for output in result.outputs}
            identity = {"model_version": result.model_version, "request_id": result.id}
            if CONTRIBUTIONS_OUTPUT_NAME in outputs:
                return {**self._v1_explanation(outputs), **identity}
            if CLASS_OUTPUT_NAME in outputs:  # a multiclass model: its class labels and per-class probabilities
                labels = outputs[CLASS_OUTPUT_NAME].as_numpy().reshape(-1)
                return {
                    "predictions": [_plain(v.decode() if isinstance(v, bytes) else v) for v in labels],
                    "probabilities": outputs[OUTPUT_NAME].as_numpy().reshape(len(labels), -1).tolist(),
                    **identity,
                }
            return {"predictions": result.outputs[0].as_numpy().reshape(-1).tolist(), **identity}
        return result

    def _v1_explanation(self, outputs: dict[str, Any]) -> dict:
        """The predictor's V2 explanation outputs as V1 ``:explain`` answers them (see the predictor)."""
        contributions = outputs[CONTRIBUTIONS_OUTPUT_NAME].as_numpy()
        bias = outputs[BIAS_OUTPUT_NAME].as_numpy()
        if CLASSES_OUTPUT_NAME in outputs:
            classes = [
                _plain(v.decode() if isinstance(v, bytes) else v) for v in outputs[CLASSES_OUTPUT_NAME].as_numpy()
            ]
            labels = outputs[CLASS_OUTPUT_NAME].as_numpy().reshape(-1)
            predictions = [_plain(v.decode() if isinstance(v, bytes) else v) for v in labels]
        else:
            classes, predictions = None, outputs[OUTPUT_NAME].as_numpy().reshape(-1).tolist()
        return {
            "predictions": predictions,
            "explanations": v1_explanations(self.feature_names or [], contributions, bias, classes),
        }


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _value_of(value: Any) -> Any:
    """The Python value of a Feast ``Value`` proto (None for a null)."""
    kind = value.WhichOneof("val")
    if kind is None or kind == "null_val":
        return None
    return getattr(value, kind)


def _value_to_float(value: Any) -> float:
    kind = value.WhichOneof("val")
    if kind is None or kind == "null_val":
        return float("nan")
    raw = getattr(value, kind)
    if isinstance(raw, bytes | str):
        raise InvalidInput(f"Feature value {raw!r} is not numeric; the feature service must serve numeric features.")
    return float(raw)
