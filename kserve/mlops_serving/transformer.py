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
from typing import Any

import numpy as np
from kserve.errors import InvalidInput
from kserve.model import InferenceVerb, Model
from kserve.protocol.infer_type import InferInput, InferRequest, InferResponse

from mlops_serving.metrics import ServingMetrics
from mlops_serving.online_features import OnlineFeatures, open_online_features
from mlops_serving.predictor import (
    BIAS_OUTPUT_NAME,
    CLASS_OUTPUT_NAME,
    CLASSES_OUTPUT_NAME,
    CONTRIBUTIONS_OUTPUT_NAME,
    INPUT_NAME,
    NUMERIC_DATATYPES,
    OUTPUT_NAME,
    matrix_from_columns,
    request_id_of,
    v1_explanations,
)

logger = logging.getLogger(__name__)

# Whether the current request came in as V1 (answer in V1) -- set in preprocess, read in postprocess.
_V1_REQUEST: contextvars.ContextVar[bool] = contextvars.ContextVar("v1_request", default=False)


class EntityRequests:
    """Entity requests in, the model's answer out: what the transformer and the fused predictor share.

    ``preprocess`` turns an entity request (V1 instances or V2 tensors of entity keys and request fields) into the
    predictor's V2 feature tensor through :class:`~mlops_serving.online_features.OnlineFeatures` (or passes a
    feature tensor through); ``postprocess`` answers a V1 request in V1. The class using it sets
    ``online_features`` in ``load`` and scores the tensor: over the network (:class:`FeastTransformer`) or in
    process (:class:`mlops_serving.fused.FusedPredictor`).
    """

    name: str
    feature_names: Any
    online_features: OnlineFeatures | None = None
    #: Whether the feature tensor carries raw bytes (scored in process) or JSON numbers (sent over gRPC or REST).
    binary_feature_tensor = False

    @property
    def entity_keys(self) -> list[str]:
        """The entity keys an entity request carries."""
        return self.online_features.entity_keys if self.online_features else []

    @property
    def request_fields(self) -> list[str]:
        """The request fields an entity request carries (besides its entity keys)."""
        return self.online_features.request_fields if self.online_features else []

    # -- metadata ------------------------------------------------------------------------------------------------
    def get_input_types(self) -> list[dict]:
        """V2 metadata: the feature tensor it passes through, then the entity request's fields."""
        datatypes = {"Int64": "INT64", "Int32": "INT32", "Float64": "FP64", "Float32": "FP32", "Bool": "BOOL"}
        fields = [
            {
                "name": name,
                "datatype": datatypes.get(
                    (self.online_features.types if self.online_features else {}).get(name, ""), "BYTES"
                ),
                "shape": [-1],
            }
            for name in self.entity_keys + self.request_fields
        ]
        return [{"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, len(self.feature_names or [])]}, *fields]

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
                values = tensor.as_numpy().reshape(-1).tolist()  # Python scalars, converted in one C loop
            except ValueError as exc:
                raise InvalidInput(
                    f"Input '{tensor.name}' data does not match its shape {list(tensor.shape)}: {exc}"
                ) from None
            if tensor.datatype == "BYTES":
                values = [v.decode() if isinstance(v, bytes) else v for v in values]
            columns[tensor.name] = values
        lengths = {len(v) for v in columns.values()}
        if len(lengths) != 1:
            raise InvalidInput(
                f"Entity request inputs have different lengths {sorted(lengths)}; all must have n values."
            )
        names = list(columns)
        return [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]

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
        assert self.online_features is not None, "load() first"
        return self.online_features.matrix(rows)

    # -- kserve handlers -----------------------------------------------------------------------------------------
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
                    else matrix_from_columns(
                        {t.name: t for t in payload.inputs},
                        self.feature_names or [],
                        self.online_features.codes if self.online_features else {},
                    )
                )
                # Re-encoded flat: V2 JSON may nest rows, which the gRPC hop to the predictor cannot carry.
                return self._feature_request(matrix, request_id, payload.parameters)
            rows = self._rows_from_v2(payload)
        elif isinstance(payload, dict):
            _V1_REQUEST.set(True)
            rows = self._rows_from_v1(payload)
        else:
            raise InvalidInput(f"Unsupported request body of type {type(payload).__name__}.")
        matrix = self.features_for(rows)
        parameters = payload.parameters if isinstance(payload, InferRequest) else None
        return self._feature_request(matrix, request_id, parameters)

    def _feature_request(self, matrix: np.ndarray, request_id: str, parameters: Any) -> InferRequest:
        """The predictor's V2 request: one FP32 tensor ``input-0`` ``[n, n_features]``."""
        tensor = InferInput(name=INPUT_NAME, shape=list(matrix.shape), datatype="FP32")
        tensor.set_data_from_numpy(matrix, binary_data=self.binary_feature_tensor)
        return InferRequest(model_name=self.name, infer_inputs=[tensor], request_id=request_id, parameters=parameters)

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


class FeastTransformer(EntityRequests, Model):
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
        self.reject_unknown_entities = reject_unknown_entities
        #: The model's features from Feast's online store (opened by ``load``).
        self.online_features: OnlineFeatures | None = None
        self.metrics = ServingMetrics(name, "transformer")
        #: The version the predictor answered with last: the label of an error that no predictor answered.
        self.answered_version = "unknown"

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def load(self) -> bool:
        """Open the feature store, resolve the FeatureService and the model's feature order."""
        self.online_features = open_online_features(
            self.name,
            feast_repo_path=self.feast_repo_path,
            feast_config=self.feast_config,
            feature_service=self.feature_service_name,
            storage_uri=self.storage_uri,
            feature_names=self.feature_names,
            tracking_uri=self.tracking_uri,
            max_batch_size=self.max_batch_size,
            reject_unknown_entities=self.reject_unknown_entities,
        )
        self.feature_names = self.online_features.feature_names
        self.ready = True
        return self.ready

    def get_output_types(self) -> list[dict]:
        """V2 metadata: the predictor's ``output-0`` (a multiclass predictor adds ``class``; see its metadata)."""
        return [{"name": "output-0", "datatype": "FP32", "shape": [-1]}]

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

    async def explain(self, payload: InferRequest, headers: dict[str, str] | None = None) -> InferResponse:
        """V1 ``:explain``: the features looked up as for a prediction, explained by the predictor (V2 ``explain``)."""
        payload.parameters = {**(payload.parameters or {}), "explain": True}
        return await self.predict(payload, headers)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
