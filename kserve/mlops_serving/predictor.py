"""XGBoost predictor on ``kserve.Model``, in the shape of KServe's xgbserver.

Requests:

* Open Inference Protocol (V2, REST and gRPC): one numeric tensor ``[n, n_features]`` (named ``input-0`` by
  convention) in the model's feature order, or one ``[n]`` tensor per feature named after the feature
  (column form).
* KServe V1: ``{"instances": [[...], ...]}`` (rows in feature order) or ``{"instances": [{feature: value}, ...]}``.

Categorical features (a model trained with string features; its file's ``mlops_categories`` attribute holds the
frozen categories of each): send their values as strings, a ``BYTES`` ``[n]`` tensor in column form or strings in
V1 instances. Each value is mapped to its code through the frozen categories; a value the model never saw and a
null are missing (NaN), exactly as an explicit missing value, never an error. In the single ``[n, n_features]``
numeric tensor (what the Feast transformer forwards) a categorical column carries the code itself; a number that
is not a code of the column is missing too. Numeric features are unchanged.

Responses depend on the model's task (read from the model file, see :func:`model_task`):

* binary: V2 one FP32 tensor ``output-0`` ``[n]`` (the positive-class probability); V1 ``{"predictions": [p, ...]}``.
* regression: the same shapes, holding the predicted values.
* multiclass: V2 ``output-0`` FP32 ``[n, classes]`` (per-class probabilities, in the order of the model's
  classes) and ``class`` ``[n]`` (the arg-max class label: INT64 for numeric labels, else BYTES); V1
  ``{"predictions": [label, ...], "probabilities": [[p, ...], ...]}``. The class order is the model's (the
  trainer's sorted label values, in the model file's ``mlops_classes`` attribute).

Explanations (XGBoost's TreeSHAP, ``pred_contribs``): per-feature contributions and the bias of each row, in the
model's margin units (log-odds for binary, per-class scores for multiclass, the value for regression), so that
contributions plus bias equal the margin. A categorical feature contributes as one feature; a missing value
contributes what the trees' default branches give it. KServe's V1 ``/v1/models/<name>:explain`` answers
``{"predictions": [...], "explanations": [{"bias": b, "contributions": {feature: c}}, ...]}`` (multiclass: both
per class label); a V2 request with the parameter ``"explain": true`` gets the outputs ``contributions``
(``[n, n_features]``, multiclass ``[n, classes, n_features]``), ``bias`` (``[n]``, ``[n, classes]``) and, for
multiclass, ``classes`` (the class labels in that order) next to its predictions.

Every request is counted in the per-version Prometheus metrics on ``/metrics`` (see :mod:`mlops_serving.metrics`).

Every served row goes to the prediction log when the server was started with ``--prediction_log_uri``: logging is
the server's setting, and nothing in a request (parameters, headers) can turn it off.

Malformed requests raise :class:`kserve.errors.InvalidInput`, which the server answers with HTTP 400 (gRPC
``INVALID_ARGUMENT``) and a message that says what was expected.
"""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb
from kserve.errors import InvalidInput
from kserve.model import InferenceVerb, Model
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse, to_http_parameters

from mlops_serving.metrics import ServingMetrics, VersionMeter
from mlops_serving.prediction_log import PredictionLogger
from mlops_serving.storage import find_model_file, model_version_from_dir, resolve_model

logger = logging.getLogger(__name__)

NUMERIC_DATATYPES = {
    "FP16",
    "FP32",
    "FP64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "BOOL",
}
INPUT_NAME = "input-0"
OUTPUT_NAME = "output-0"
#: V2 output with a multiclass model's arg-max class label.
CLASS_OUTPUT_NAME = "class"
#: V2 explanation outputs (request parameter ``explain``): TreeSHAP contributions, bias, multiclass class labels.
CONTRIBUTIONS_OUTPUT_NAME = "contributions"
BIAS_OUTPUT_NAME = "bias"
CLASSES_OUTPUT_NAME = "classes"

# The model file's task attributes: the names of mlops_provider.lineage.BOOSTER_TASK_ATTR/BOOSTER_CLASSES_ATTR
# (the serving image does not install the provider; tests/unit/serving/test_task_contract.py keeps them equal).
BOOSTER_TASK_ATTR = "mlops_task"
BOOSTER_CLASSES_ATTR = "mlops_classes"
BOOSTER_CATEGORIES_ATTR = "mlops_categories"
TASKS = ("binary", "multiclass", "regression")


def model_categories(booster: xgb.Booster) -> dict[str, list[str]]:
    """Return the frozen categories ``{column: [category, ...]}`` of a booster's categorical features (or ``{}``)."""
    import json

    raw = booster.attr(BOOSTER_CATEGORIES_ATTR)
    if not raw:
        return {}
    return {str(column): [str(c) for c in values] for column, values in json.loads(raw).items()}


def category_code(value: Any, codes: dict[str, int]) -> float:
    """The code of ``value`` in a column's ``{category: code}``; NaN for a null or a value the model never saw.

    Values are compared as text (``mlops_provider.training.evaluation.encode_features`` does the same).
    """
    if value is None:
        return float("nan")
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    elif isinstance(value, float | np.floating) and np.isnan(value):
        return float("nan")
    elif not isinstance(value, str):
        value = str(value.item() if isinstance(value, np.generic) else value)
    code = codes.get(value)
    return float("nan") if code is None else float(code)


def matrix_from_columns(
    tensors: dict[str, Any], feature_names: list[str], codes: dict[str, dict[str, int]]
) -> np.ndarray:
    """The float32 ``[n, n_features]`` matrix of a column-form request: one ``[n]`` tensor per feature, by name.

    Categorical features (``codes``: ``{feature: {category: code}}``) come as ``BYTES`` strings and are mapped
    to their codes (unseen or null: missing); the others as numbers.
    """
    missing = [f for f in feature_names if f not in tensors]
    unknown = [name for name in tensors if name not in feature_names]
    if missing or unknown:
        raise InvalidInput(
            f"Column-form request: missing inputs {missing}, unknown inputs {unknown}; send one [n] tensor per "
            f"feature {feature_names}, or a single FP32 tensor '{INPUT_NAME}' of shape [n, {len(feature_names)}]."
        )
    columns = []
    for name in feature_names:
        tensor = tensors[name]
        categorical = name in codes
        if categorical and tensor.datatype != "BYTES":
            raise InvalidInput(
                f"Input '{name}' is a categorical feature; send its values as a BYTES [n] tensor of strings "
                f"(got {tensor.datatype})."
            )
        if not categorical and tensor.datatype not in NUMERIC_DATATYPES:
            raise InvalidInput(f"Input '{name}' has datatype {tensor.datatype}; expected a numeric datatype.")
        try:
            if categorical:
                values = np.asarray(tensor.as_numpy(), dtype=object).reshape(-1)
                columns.append(np.asarray([category_code(v, codes[name]) for v in values], dtype=np.float32))
            else:
                columns.append(np.asarray(tensor.as_numpy(), dtype=np.float32).reshape(-1))
        except ValueError as exc:
            raise InvalidInput(f"Input '{name}' data does not match its shape {list(tensor.shape)}: {exc}") from None
    lengths = {len(c) for c in columns}
    if len(lengths) != 1:
        raise InvalidInput(f"Column-form inputs have different lengths {sorted(lengths)}; all must have n rows.")
    return np.column_stack(columns)


def new_request_id() -> str:
    """A new request id (a UUID4's hex)."""
    return uuid.uuid4().hex


def request_id_of(payload: dict | InferRequest, headers: dict[str, str] | None) -> str:
    """The request's id: a V2 request's ``id``, else the ``x-request-id`` header (KServe's), else a new one."""
    if isinstance(payload, InferRequest) and payload.id:
        return str(payload.id)
    header = next((v for k, v in (headers or {}).items() if k.lower() == "x-request-id"), None)
    return str(header) if header else new_request_id()


def wants_explanation(request: InferRequest) -> bool:
    """Whether a V2 request asks for explanations (parameter ``explain``: true, over REST or gRPC)."""
    flag = to_http_parameters(request.parameters or {}).get("explain")
    return flag is True or str(flag).lower() == "true"


def v1_explanations(
    feature_names: list[str], contributions: np.ndarray, bias: np.ndarray, classes: list | None = None
) -> list[dict[str, Any]]:
    """Per row ``{"bias": b, "contributions": {feature: c}}``; multiclass (``classes``): both per class label."""

    def row(values: np.ndarray, b: float) -> dict[str, Any]:
        return {"bias": float(b), "contributions": dict(zip(feature_names, map(float, values), strict=True))}

    if classes is None:
        return [row(c, b) for c, b in zip(contributions, bias, strict=True)]
    out = []
    for per_class, biases in zip(contributions, bias, strict=True):
        rows = [row(c, b) for c, b in zip(per_class, biases, strict=True)]
        out.append(
            {
                "bias": {str(k): r["bias"] for k, r in zip(classes, rows, strict=True)},
                "contributions": {str(k): r["contributions"] for k, r in zip(classes, rows, strict=True)},
            }
        )
    return out


def valid_codes(values: np.ndarray, size: int) -> np.ndarray:
    """Numeric codes of a categorical column, with anything that is not a code in ``0..size-1`` made NaN."""
    values = np.asarray(values, dtype=np.float32).copy()
    with np.errstate(invalid="ignore"):
        bad = ~((values >= 0) & (values < size) & (np.floor(values) == values))
    values[bad] = np.nan
    return values


def model_task(booster: xgb.Booster) -> tuple[str, list | None]:
    """Return ``(task, classes)`` of a booster: the trainer's attributes, else its objective.

    Models trained before task types carry no attributes: ``binary:*`` objectives are binary, ``multi:*``
    multiclass (classes ``0..k-1``), anything else regression.
    """
    import json

    task = booster.attr(BOOSTER_TASK_ATTR)
    classes_json = booster.attr(BOOSTER_CLASSES_ATTR)
    if not task:
        objective = str(json.loads(booster.save_config())["learner"]["objective"]["name"])
        task = (
            "binary"
            if objective.startswith("binary:")
            else "multiclass"
            if objective.startswith("multi:")
            else "regression"
        )
    if task not in TASKS:
        raise ValueError(f"The model's task {task!r} is not one of {TASKS}.")
    classes = json.loads(classes_json) if classes_json else None
    if task == "multiclass" and classes is None:
        config = json.loads(booster.save_config())
        classes = list(range(int(config["learner"]["learner_model_param"]["num_class"])))
    return task, classes


class XGBoostPredictor(Model):
    """Serve an XGBoost booster loaded from a storage URI.

    :param name: model name on the endpoint path (``/v2/models/<name>/infer``).
    :param storage_uri: where the model is (``file://``, ``s3://``, ``gs://``, ``models:/``, or a local folder).
    :param model_version: version reported in responses and the prediction log; default read from ``MLmodel``.
    :param max_batch_size: largest number of rows one request may carry.
    :param nthread: XGBoost threads per prediction (1 is fastest for small batches on a shared CPU).
    :param prediction_log_uri: folder for the served-request log; ``None`` disables it.
    :param tracking_uri: MLflow tracking URI for ``models:/`` storage URIs.
    """

    def __init__(
        self,
        name: str,
        storage_uri: str,
        *,
        model_version: str | None = None,
        max_batch_size: int = 1000,
        nthread: int = 1,
        prediction_log_uri: str | None = None,
        prediction_log_flush_rows: int = 1000,
        prediction_log_flush_seconds: float = 10.0,
        tracking_uri: str | None = None,
    ) -> None:
        super().__init__(name)
        self.storage_uri = storage_uri
        self.model_version = model_version
        self.max_batch_size = max_batch_size
        self.nthread = nthread
        self.prediction_log_uri = prediction_log_uri
        self.prediction_log_flush_rows = prediction_log_flush_rows
        self.prediction_log_flush_seconds = prediction_log_flush_seconds
        self.tracking_uri = tracking_uri
        self.booster: xgb.Booster | None = None
        self.feature_names: list[str] = []
        self.task = "binary"
        self.classes: list | None = None
        #: The frozen categories of each categorical feature, and per column ``{category: code}``.
        self.categories: dict[str, list[str]] = {}
        self._codes: dict[str, dict[str, int]] = {}
        self.prediction_log: PredictionLogger | None = None
        self.meter: VersionMeter | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def load(self) -> bool:
        """Download (if remote) and load the booster; set ``ready``."""
        model_dir, registry_version = resolve_model(self.storage_uri, tracking_uri=self.tracking_uri)
        model_file = find_model_file(Path(model_dir))
        booster = xgb.Booster(model_file=str(model_file))
        booster.set_param({"nthread": self.nthread})
        self.booster = booster
        self.task, self.classes = model_task(booster)
        n_features = booster.num_features()
        self.feature_names = list(booster.feature_names or [f"f{i}" for i in range(n_features)])
        self.categories = {k: v for k, v in model_categories(booster).items() if k in self.feature_names}
        self._codes = {column: {c: i for i, c in enumerate(cats)} for column, cats in self.categories.items()}
        self.model_version = (
            self.model_version or registry_version or model_version_from_dir(Path(model_dir)) or "unknown"
        )
        self.meter = ServingMetrics(self.name, "predictor").meter(self.model_version, self.task, self.classes)
        if self.prediction_log_uri:
            self.prediction_log = PredictionLogger(
                self.prediction_log_uri,
                self.feature_names,
                self.model_version,
                categories=self.categories,
                flush_rows=self.prediction_log_flush_rows,
                flush_seconds=self.prediction_log_flush_seconds,
            )
        logger.info(
            "Loaded %s version %s from %s (%d features, %s)",
            model_file,
            self.model_version,
            self.storage_uri,
            n_features,
            self.task,
        )
        self.ready = True
        return self.ready

    def stop(self) -> None:
        """Write the buffered prediction log before the server exits."""
        if self.prediction_log is not None:
            self.prediction_log.close()
            self.prediction_log = None
        super().stop()

    # -- metadata ------------------------------------------------------------------------------------------------
    def get_input_types(self) -> list[dict]:
        """V2 metadata: one FP32 tensor ``[-1, n_features]``; with categoricals, the column form clients send.

        A model with categorical features takes their values as text, so its metadata lists one ``[-1]`` tensor
        per feature in the model's order (``BYTES`` for a categorical, ``FP32`` else); the single FP32 matrix of
        codes (what the transformer forwards) is accepted too.
        """
        if not self.categories:
            return [{"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, len(self.feature_names)]}]
        return [
            {"name": name, "datatype": "BYTES" if name in self.categories else "FP32", "shape": [-1]}
            for name in self.feature_names
        ]

    def get_output_types(self) -> list[dict]:
        """V2 metadata: one FP32 tensor ``[-1]``; multiclass ``[-1, classes]`` probabilities and the class."""
        if self.task == "multiclass":
            return [
                {"name": OUTPUT_NAME, "datatype": "FP32", "shape": [-1, len(self.classes or [])]},
                {"name": CLASS_OUTPUT_NAME, "datatype": self._class_datatype(), "shape": [-1]},
            ]
        return [{"name": OUTPUT_NAME, "datatype": "FP32", "shape": [-1]}]

    def _class_datatype(self) -> str:
        numeric = all(isinstance(c, int) and not isinstance(c, bool) for c in self.classes or [])
        return "INT64" if numeric else "BYTES"

    # -- request decoding ----------------------------------------------------------------------------------------
    def _check_batch(self, rows: int) -> None:
        if rows == 0:
            raise InvalidInput("The request has no rows; send at least one row of features.")
        if rows > self.max_batch_size:
            raise InvalidInput(
                f"Batch of {rows} rows exceeds the maximum batch size of {self.max_batch_size}; split the request."
            )

    def _matrix_from_v2(self, request: InferRequest) -> np.ndarray:
        n_features = len(self.feature_names)
        if not request.inputs:
            raise InvalidInput(
                f"The request has no inputs; send one FP32 tensor '{INPUT_NAME}' of shape [n, {n_features}]."
            )
        if len(request.inputs) == 1 and request.inputs[0].name not in self.feature_names:
            tensor = request.inputs[0]
            if tensor.datatype not in NUMERIC_DATATYPES:
                raise InvalidInput(
                    f"Input '{tensor.name}' has datatype {tensor.datatype}; expected a numeric tensor (FP32) of shape "
                    f"[n, {n_features}] in the order {self.feature_names}."
                )
            shape = list(tensor.shape)
            if len(shape) != 2 or shape[1] != n_features:
                raise InvalidInput(
                    f"Input '{tensor.name}' has shape {shape}; expected [n, {n_features}] "
                    f"(one row per instance, features in the order {self.feature_names})."
                )
            self._check_batch(shape[0])
            try:
                matrix = tensor.as_numpy()
            except ValueError as exc:
                raise InvalidInput(f"Input '{tensor.name}' data does not match its shape {shape}: {exc}") from None
            return self._valid_codes(np.asarray(matrix, dtype=np.float32))
        return self._matrix_from_columns({t.name: t for t in request.inputs})

    def _valid_codes(self, matrix: np.ndarray) -> np.ndarray:
        """A numeric matrix whose categorical columns hold codes: anything that is not a code becomes missing."""
        if self.categories:
            matrix = matrix.copy()  # a binary tensor's array may be a read-only view of the request
            for j, name in enumerate(self.feature_names):
                if name in self.categories:
                    matrix[:, j] = valid_codes(matrix[:, j], len(self.categories[name]))
        return matrix

    def _matrix_from_columns(self, tensors: dict[str, Any]) -> np.ndarray:
        matrix = matrix_from_columns(tensors, self.feature_names, self._codes)
        self._check_batch(len(matrix))
        return matrix

    def _matrix_from_v1(self, payload: dict) -> np.ndarray:
        instances = payload.get("instances", payload.get("inputs"))
        if not isinstance(instances, list):
            raise InvalidInput(
                'Expected "instances": a list of rows (lists in feature order) or of {feature: value} objects.'
            )
        self._check_batch(len(instances))
        n_features = len(self.feature_names)
        if all(isinstance(row, dict) for row in instances):
            rows = []
            for i, row in enumerate(instances):
                missing = [f for f in self.feature_names if f not in row]
                if missing:
                    raise InvalidInput(f"Instance {i} is missing field(s) {missing}.")
                rows.append([row[f] for f in self.feature_names])
        else:
            rows = instances
            for i, row in enumerate(rows):
                if not isinstance(row, list) or len(row) != n_features:
                    raise InvalidInput(
                        f"Instance {i} has {len(row) if isinstance(row, list) else type(row).__name__} values; expected a "
                        f"list of {n_features} numbers in the order {self.feature_names}."
                    )
        if self._codes:  # categorical values (strings, nulls) become their codes; numbers stay as they are
            positions = [(j, self._codes[name]) for j, name in enumerate(self.feature_names) if name in self._codes]
            rows = [list(row) for row in rows]
            for row in rows:
                for j, codes in positions:
                    row[j] = category_code(row[j], codes)
        try:
            return np.asarray(rows, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            strings = f" (and strings for the categorical features {list(self._codes)})" if self._codes else ""
            raise InvalidInput(f"Instances must hold numbers only{strings}: {exc}") from None

    # -- inference -----------------------------------------------------------------------------------------------
    async def __call__(
        self, body: Any, headers: dict[str, str] | None = None, verb: InferenceVerb = InferenceVerb.PREDICT
    ) -> Any:
        """KServe's request path, counted in the version's metrics (answers and errors, with their time)."""
        started = time.perf_counter()
        try:
            answer = await super().__call__(body, headers, verb)
        except Exception as error:
            if self.meter is not None:
                self.meter.failed(error, time.perf_counter() - started)
            raise
        if self.meter is not None:
            self.meter.served(time.perf_counter() - started)
        return answer

    def predict_matrix(self, matrix: np.ndarray) -> np.ndarray:
        """Score a float32 matrix in feature order (the in-process path the server uses).

        Returns ``[n]`` positive-class probabilities (binary) or values (regression), ``[n, classes]`` class
        probabilities (multiclass).
        """
        assert self.booster is not None, "load() first"
        scores = np.asarray(self.booster.inplace_predict(matrix, validate_features=False), dtype=np.float32).reshape(
            len(matrix), -1
        )
        return scores if self.task == "multiclass" else scores[:, -1]

    def explain_matrix(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """TreeSHAP contributions ``[n, n_features]`` and bias ``[n]`` of each row, in margin units.

        Multiclass: ``[n, classes, n_features]`` and ``[n, classes]``. Contributions plus bias sum to the margin.
        """
        assert self.booster is not None, "load() first"
        data = xgb.DMatrix(
            matrix,
            feature_names=self.feature_names,
            feature_types=self.booster.feature_types,
            enable_categorical=bool(self.categories),
            missing=np.nan,
            nthread=self.nthread,  # the default (every core) spins OpenMP threads against the event loop
        )
        contributions = np.asarray(self.booster.predict(data, pred_contribs=True), dtype=np.float32)
        return contributions[..., :-1], contributions[..., -1]

    def class_labels(self, probabilities: np.ndarray) -> list:
        """The arg-max class label of each row of a multiclass model's probabilities."""
        classes = self.classes or list(range(probabilities.shape[1]))
        return [classes[i] for i in probabilities.argmax(axis=1)]

    def predict(self, payload: dict | InferRequest, headers: dict[str, str] | None = None) -> dict | InferResponse:
        """Score a V1 or V2 request; synchronous because one booster call is faster than a thread hop.

        Every answer names its request id (the V2 request's ``id``, else the ``x-request-id`` header, else a new
        one) and the model version; the prediction log records both for each row.
        """
        started = time.perf_counter()
        request_id = request_id_of(payload, headers)
        if isinstance(payload, InferRequest):
            matrix = self._matrix_from_v2(payload)
            payload.id = request_id
        elif isinstance(payload, dict):
            matrix = self._matrix_from_v1(payload)
        else:
            raise InvalidInput(f"Unsupported request body of type {type(payload).__name__}.")
        predictions = self.predict_matrix(matrix)
        if self.meter is not None:
            self.meter.predictions(predictions)
        explanation = (
            self.explain_matrix(matrix) if isinstance(payload, InferRequest) and wants_explanation(payload) else None
        )
        if self.prediction_log is not None:
            latency_ms = (time.perf_counter() - started) * 1000
            self.prediction_log.log(matrix, predictions, request_id, latency_ms)
        if isinstance(payload, InferRequest):
            return self._v2_response(payload, predictions, explanation=explanation)
        identity = {"model_version": self.model_version, "request_id": request_id}
        if self.task == "multiclass":
            return {"predictions": self.class_labels(predictions), "probabilities": predictions.tolist(), **identity}
        return {"predictions": predictions.tolist(), **identity}

    def explain(self, payload: dict | InferRequest, headers: dict[str, str] | None = None) -> dict | InferResponse:
        """V1 ``:explain``: predictions and per-row TreeSHAP explanations (V2: ``predict`` with ``explain``)."""
        if isinstance(payload, InferRequest):
            payload.parameters = {**(payload.parameters or {}), "explain": True}
            return self.predict(payload, headers)
        if not isinstance(payload, dict):
            raise InvalidInput(f"Unsupported request body of type {type(payload).__name__}.")
        started = time.perf_counter()
        request_id = request_id_of(payload, headers)
        matrix = self._matrix_from_v1(payload)
        predictions = self.predict_matrix(matrix)
        contributions, bias = self.explain_matrix(matrix)
        if self.prediction_log is not None:
            self.prediction_log.log(matrix, predictions, request_id, (time.perf_counter() - started) * 1000)
        multiclass = self.task == "multiclass"
        return {
            "predictions": self.class_labels(predictions) if multiclass else predictions.tolist(),
            "explanations": v1_explanations(
                self.feature_names, contributions, bias, self.classes if multiclass else None
            ),
            "model_version": self.model_version,
            "request_id": request_id,
        }

    def _v2_response(
        self,
        payload: InferRequest,
        predictions: np.ndarray,
        explanation: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> InferResponse:
        multiclass = self.task == "multiclass"
        output = InferOutput(name=OUTPUT_NAME, shape=list(predictions.shape), datatype="FP32")
        output.set_data_from_numpy(predictions, binary_data=payload.use_binary_outputs)
        outputs = [output]
        if multiclass:
            datatype = self._class_datatype()
            labels = self.class_labels(predictions)
            values = np.asarray(labels, dtype=np.int64) if datatype == "INT64" else np.asarray(labels, dtype=object)
            label_output = InferOutput(name=CLASS_OUTPUT_NAME, shape=[len(labels)], datatype=datatype)
            label_output.set_data_from_numpy(values, binary_data=payload.use_binary_outputs)
            outputs.append(label_output)
        if explanation is not None:
            for name, values in zip((CONTRIBUTIONS_OUTPUT_NAME, BIAS_OUTPUT_NAME), explanation, strict=True):
                tensor = InferOutput(name=name, shape=list(values.shape), datatype="FP32")
                tensor.set_data_from_numpy(np.ascontiguousarray(values), binary_data=payload.use_binary_outputs)
                outputs.append(tensor)
            if multiclass:
                classes = self.classes or list(range(predictions.shape[1]))
                datatype = self._class_datatype()
                array = (
                    np.asarray(classes, dtype=np.int64) if datatype == "INT64" else np.asarray(classes, dtype=object)
                )
                tensor = InferOutput(name=CLASSES_OUTPUT_NAME, shape=[len(classes)], datatype=datatype)
                tensor.set_data_from_numpy(array, binary_data=payload.use_binary_outputs)
                outputs.append(tensor)
        return InferResponse(
            response_id=payload.id or new_request_id(),
            model_name=self.name,
            model_version=self.model_version,
            infer_outputs=outputs,
            from_grpc=payload.from_grpc,
            use_binary_outputs=payload.use_binary_outputs,
        )
