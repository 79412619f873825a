"""Read a training-set snapshot and cut it into the time-ordered train, validation and holdout matrices."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from include.trainer.params import TrainingError
from mlops_provider.training.evaluation import (
    TimeSplit,
    categorical_columns,
    category_mapping,
    feature_matrix,
    time_split,
)

REQUIRED_MANIFEST_KEYS = ("label_column", "timestamp_column", "feature_columns")


def snapshot_paths(uri: str) -> tuple[str, str]:
    """Return ``(data_uri, manifest_uri)`` for a snapshot folder or its ``data.parquet`` file."""
    uri = uri.rstrip("/")
    if "://" not in uri:
        uri = f"file://{os.path.abspath(uri)}"
    folder = uri.rsplit("/", 1)[0] if uri.endswith(".parquet") else uri
    data = uri if uri.endswith(".parquet") else f"{folder}/data.parquet"
    return data, f"{folder}/manifest.json"


def read_training_set(uri: str) -> tuple[Any, dict[str, Any]]:
    """Read the snapshot's rows and manifest (``file://``, ``s3://``, ``gs://`` through fsspec)."""
    import fsspec
    import pandas as pd

    data_uri, manifest_uri = snapshot_paths(uri)
    try:
        with fsspec.open(manifest_uri, "rt") as handle:
            manifest = json.load(handle)
        with fsspec.open(data_uri, "rb") as handle:
            df = pd.read_parquet(handle)
    except FileNotFoundError as exc:
        raise TrainingError(f"training set snapshot not found at {uri}: {exc}") from exc
    missing = [key for key in REQUIRED_MANIFEST_KEYS if not manifest.get(key)]
    if missing:
        raise TrainingError(f"manifest {manifest_uri} lacks {missing}")
    return df, manifest


@dataclass(frozen=True)
class TrainingData:
    """The split snapshot: feature frames and label arrays of each part."""

    split: TimeSplit
    features: list[str]
    label: str
    rows: int
    x_train: Any
    x_val: Any
    x_hold: Any
    y_train: Any
    y_val: Any
    y_hold: Any
    task: str = "binary"
    #: Multiclass: the label values in the order of the model's class indexes (``y_*`` hold the indexes).
    classes: list[Any] | None = None
    #: The frozen category mapping ``{column: [category, ...]}`` of the categorical features (code ``i`` is
    #: ``categories[column][i]``), learned from the train part; ``x_*`` hold those columns as pandas categories.
    categories: dict[str, list[str]] | None = None


def label_classes(df: Any, label: str) -> list[Any]:
    """The multiclass label values, sorted; class ``i`` of the model is ``classes[i]``."""
    values = df[label].dropna().unique().tolist()
    try:
        return sorted(values)
    except TypeError:  # mixed types: order by their text
        return sorted(values, key=str)


def prepare(df: Any, manifest: dict[str, Any], split: dict[str, Any], task: str = "binary") -> TrainingData:
    """Split ``df`` by time (``split`` holds the fractions) into numeric matrices and labels of ``task``.

    Binary labels are 0/1; multiclass labels may be any values (the model predicts their index in
    :func:`label_classes`); regression labels are numbers.
    """
    import numpy as np

    label, ts_col = manifest["label_column"], manifest["timestamp_column"]
    features: list[str] = list(manifest["feature_columns"])
    if label not in df.columns:
        raise TrainingError(f"label column {label!r} is not in the training set")
    if df[label].isna().any():
        raise TrainingError(f"label column {label!r} has {int(df[label].isna().sum())} missing values")
    parts = time_split(df, ts_col, **split)
    frames = (parts.train, parts.validation, parts.holdout)
    categories = category_mapping(parts.train, training_categorical_columns(df, manifest))
    x_train, x_val, x_hold = (feature_matrix(part, features, categories) for part in frames)
    classes = None
    if task == "multiclass":
        classes = label_classes(df, label)
        if len(classes) < 2:
            raise TrainingError(f"label column {label!r} has a single class {classes}; multiclass needs at least two")
        index = {value: i for i, value in enumerate(classes)}
        y_train, y_val, y_hold = (part[label].map(index).astype("int32").to_numpy() for part in frames)
    elif task == "regression":
        import pandas as pd

        if not pd.api.types.is_numeric_dtype(df[label]):
            raise TrainingError(f"label column {label!r} is {df[label].dtype}; regression needs a numeric label")
        y_train, y_val, y_hold = (part[label].astype("float32").to_numpy() for part in frames)
    else:
        y_train, y_val, y_hold = (part[label].astype("int32").to_numpy() for part in frames)
    for name, y in (("train", y_train), ("validation", y_val)):
        if len(np.unique(y)) < 2:
            raise TrainingError(f"the {name} part has a single label value; use a longer training window")
    return TrainingData(
        parts,
        features,
        label,
        len(df),
        x_train,
        x_val,
        x_hold,
        y_train,
        y_val,
        y_hold,
        task=task,
        classes=classes,
        categories=categories or None,
    )


def training_categorical_columns(df: Any, manifest: dict[str, Any]) -> list[str]:
    """The categorical features: every string, object or ``category`` feature column of the snapshot.

    The manifest's ``categorical_columns`` (written by the training-set builder) must agree with the data, so a
    snapshot edited by hand cannot silently train a column the other way.
    """
    features = list(manifest["feature_columns"])
    found = categorical_columns(df, features)
    listed = manifest.get("categorical_columns")
    if listed is not None and sorted(listed) != sorted(found):
        raise TrainingError(
            f"manifest categorical_columns {sorted(listed)} differ from the snapshot's string columns {sorted(found)}"
        )
    return found
