"""The ``dask`` engine: the training part stays spread over a Dask cluster and ``xgboost.dask`` boosts on it.

``python -m include.trainer --engine dask [--dask-scheduler ADDRESS]`` connects to a running scheduler: the
operator's ``distributed.LocalCluster`` (worker processes on the Airflow machine), a scheduler of the
``dask_default`` connection, or, in a ``DaskJob`` runner pod, ``DASK_SCHEDULER_ADDRESS`` set by the
dask-kubernetes operator. Each step matches the in-memory engine's so both register comparable models:

* the snapshot is read as a dask dataframe (one partition per parquet row group, at least two per worker);
* the time-split boundaries come from :func:`~mlops_provider.training.evaluation.time_split` on the timestamp
  column alone, so the parts hold exactly the rows the in-memory split gives them;
* the train part (most rows) stays on the workers; validation and holdout come back to this process, where the
  booster is scored by the same :func:`~include.trainer.fit.score_fitted` as every other run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from include.trainer.data import (
    REQUIRED_MANIFEST_KEYS,
    TrainingData,
    encode_labels,
    multiclass_classes,
    require_label_variety,
    snapshot_paths,
)
from include.trainer.data import training_categorical_columns as categorical_feature_columns
from include.trainer.fit import FitResult, booster_params, gpu_visible, score_fitted, training_plan
from include.trainer.params import TrainingError
from mlops_provider.lineage import MULTICLASS, REGRESSION
from mlops_provider.training.evaluation import TimeSplit, category_mapping, feature_matrix, time_split

if TYPE_CHECKING:
    from distributed import Client

#: Set by the dask-kubernetes operator in a DaskJob's runner pod (``tcp://<job>-scheduler.<ns>.svc...:8786``).
SCHEDULER_ADDRESS_ENV = "DASK_SCHEDULER_ADDRESS"
#: How long the trainer waits for the scheduler and its first worker (GPU workers may still be pulling the image).
CONNECT_TIMEOUT_SECONDS = 300
#: Partitions per worker: enough for every worker to hold rows, few enough to keep task overhead small.
PARTITIONS_PER_WORKER = 2


@dataclass(frozen=True)
class DistributedTrainingData(TrainingData):
    """:class:`TrainingData` whose ``x_train`` is a persisted dask dataframe on the workers.

    ``train_labels`` are the same rows' labels as a dask series (what ``xgboost.dask`` boosts on); ``y_train``
    holds them as a NumPy array too (4 bytes a row) for the class counts of ``scale_pos_weight``. ``split.train``
    is ``x_train``: the run records its row count.
    """

    train_labels: Any = None


def _window(part: Any, timestamp_column: str, start: Any, end: Any) -> Any:
    """The rows of ``part`` with ``start <= timestamp < end`` (None: open), compared as UTC like ``time_split``."""
    import pandas as pd

    ts = pd.to_datetime(part[timestamp_column], utc=True)
    keep = pd.Series(True, index=part.index)
    if start is not None:
        keep &= ts >= start
    if end is not None:
        keep &= ts < end
    return part[keep]


class DaskEngine:
    """Train on the workers of a Dask cluster with ``xgboost.dask`` (see the module docstring)."""

    name = "dask"

    def __init__(self, client: Client) -> None:
        self.client = client

    @classmethod
    def connect(cls, address: str | None, env: Mapping[str, str]) -> DaskEngine:
        """Connect to the scheduler at ``address`` (default ``DASK_SCHEDULER_ADDRESS``) and wait for a worker."""
        from distributed import Client

        address = address or env.get(SCHEDULER_ADDRESS_ENV)
        if not address:
            raise TrainingError(
                f"--engine dask needs the scheduler: pass --dask-scheduler tcp://HOST:PORT or set {SCHEDULER_ADDRESS_ENV}"
            )
        try:
            client = Client(address, timeout=CONNECT_TIMEOUT_SECONDS)
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_SECONDS)
        except (OSError, TimeoutError) as exc:
            raise TrainingError(f"could not reach a Dask scheduler with workers at {address}: {exc}") from exc
        return cls(client)

    @property
    def n_workers(self) -> int:
        return len(self.client.scheduler_info(n_workers=-1)["workers"])

    # ------------------------------------------------------------------ data
    def read_training_set(self, uri: str) -> tuple[Any, dict[str, Any]]:
        """The snapshot as a dask dataframe (nothing is read into this process) and its manifest."""
        import dask
        import dask.dataframe as dd
        import fsspec

        data_uri, manifest_uri = snapshot_paths(uri)
        try:
            with fsspec.open(manifest_uri, "rt") as handle:
                manifest = json.load(handle)
            # Strings stay Python objects, as pandas reads them: categorical features get the same categories.
            with dask.config.set({"dataframe.convert-string": False}):
                frame = dd.read_parquet(data_uri, split_row_groups=True)
        except FileNotFoundError as exc:
            raise TrainingError(f"training set snapshot not found at {uri}: {exc}") from exc
        missing = [key for key in REQUIRED_MANIFEST_KEYS if not manifest.get(key)]
        if missing:
            raise TrainingError(f"manifest {manifest_uri} lacks {missing}")
        wanted = PARTITIONS_PER_WORKER * max(self.n_workers, 1)
        if frame.npartitions < wanted:
            frame = frame.repartition(npartitions=wanted)
        return frame, manifest

    def prepare(self, df: Any, manifest: dict[str, Any], params: Mapping[str, Any], task: str) -> TrainingData:
        """Split by time: train persisted on the workers, validation and holdout collected here."""
        split = params["split"]
        import pandas as pd
        from distributed import wait

        label, ts_col = manifest["label_column"], manifest["timestamp_column"]
        features: list[str] = list(manifest["feature_columns"])
        if label not in df.columns:
            raise TrainingError(f"label column {label!r} is not in the training set")
        if ts_col not in df.columns:
            raise TrainingError(f"timestamp column {ts_col!r} is not in the training set")
        missing_labels = int(df[label].isna().sum().compute())
        if missing_labels:
            raise TrainingError(f"label column {label!r} has {missing_labels} missing values")
        if task == REGRESSION and not pd.api.types.is_numeric_dtype(df[label].dtype):
            raise TrainingError(f"label column {label!r} is {df[label].dtype}; regression needs a numeric label")
        # The boundaries from the timestamps alone (8 bytes a row), by the same rule as the in-memory split.
        timestamps = df[ts_col].compute().reset_index(drop=True)
        bounds = time_split(pd.DataFrame({ts_col: timestamps}), ts_col, **split)
        vs, hs = bounds.validation_start, bounds.holdout_start
        train = self._spread(df.map_partitions(_window, ts_col, None, vs))
        validation = df.map_partitions(_window, ts_col, vs, hs).compute().reset_index(drop=True)
        holdout = df.map_partitions(_window, ts_col, hs, None).compute().reset_index(drop=True)

        categorical = categorical_feature_columns(df._meta, manifest)
        categories: dict[str, list[str]] = {}
        for column in categorical:
            values = train[column].dropna().unique().compute()
            categories.update(category_mapping(pd.DataFrame({column: values}), [column]))
        classes = None
        if task == MULTICLASS:
            distinct = df[label].dropna().unique().compute()
            classes = multiclass_classes(pd.DataFrame({label: distinct}), label)

        x_train = self.place(train.map_partitions(feature_matrix, features, categories))
        train_labels = self.place(train.map_partitions(encode_labels, label, task, classes))
        wait([x_train, train_labels])
        del train  # the features and labels are on the workers now
        y_train = train_labels.compute().to_numpy()
        x_val, x_hold = (feature_matrix(part, features, categories) for part in (validation, holdout))
        y_val, y_hold = (encode_labels(part, label, task, classes).to_numpy() for part in (validation, holdout))
        require_label_variety(y_train, y_val)
        return DistributedTrainingData(
            TimeSplit(x_train, validation, holdout, vs, hs),
            features,
            label,
            len(timestamps),
            x_train,
            x_val,
            x_hold,
            y_train,
            y_val,
            y_hold,
            task=task,
            classes=classes,
            categories=categories or None,
            train_labels=train_labels,
        )

    def _spread(self, train: Any) -> Any:
        """The train rows persisted in non-empty partitions, at least two per worker.

        The snapshot is time-ordered, so partitions past the validation boundary come out empty; XGBoost refuses
        a worker whose input is empty, so those are dropped and the rest split evenly.
        """
        from distributed import wait

        train = self.client.persist(train)
        wait(train)
        sizes = train.map_partitions(len).compute().tolist()
        kept = [i for i, size in enumerate(sizes) if size]
        if len(kept) < len(sizes):
            train = train.partitions[kept]
        wanted = PARTITIONS_PER_WORKER * max(self.n_workers, 1)
        if train.npartitions < wanted and sum(sizes) >= wanted:
            train = train.repartition(npartitions=wanted)
        return train

    def place(self, frame: Any) -> Any:
        """``frame`` computed on the workers, partition ``i`` on worker ``i mod n``.

        XGBoost pairs each worker's share of the train and validation matrices and refuses an empty share when
        there are categorical features; placing every collection round-robin in the same order puts each
        partition's features and labels on the same worker and gives every worker rows of both.
        """
        import dask.dataframe as dd

        workers = sorted(self.client.scheduler_info(n_workers=-1)["workers"])
        parts = frame.to_delayed()
        futures = [self.client.compute(part, workers=[workers[i % len(workers)]]) for i, part in enumerate(parts)]
        return dd.from_delayed(futures, meta=frame._meta, verify_meta=False)

    # ------------------------------------------------------------------ boosting
    def gpu_visible(self) -> bool:
        """True when every worker sees a GPU (the workers boost; the runner pod needs none)."""
        seen = self.client.run(gpu_visible)
        return bool(seen) and all(seen.values())

    def training_plan(self, params: Mapping[str, Any], *, gpu: bool) -> dict[str, Any]:
        """The in-memory plan with the Dask matrix of the device (quantised on the workers on CUDA)."""
        plan = training_plan(params, gpu=gpu)
        plan["matrix"] = "DaskQuantileDMatrix" if plan["device"].startswith("cuda") else "DaskDMatrix"
        return plan

    def fit(self, params: Mapping[str, Any], plan: Mapping[str, Any], data: TrainingData) -> FitResult:
        """Boost on the workers with early stopping on validation, then score like every other run."""
        import dask.dataframe as dd
        import mlflow
        import pandas as pd
        import xgboost as xgb
        import xgboost.dask  # noqa: F401  (registers xgb.dask)

        if not isinstance(data, DistributedTrainingData):
            raise TrainingError("the dask engine trains on data it prepared itself")
        resolved = booster_params(params, plan, data.y_train, data.classes)
        categorical = bool(data.categories)
        workers = self.n_workers
        x_val = self.place(dd.from_pandas(data.x_val, npartitions=workers, sort=False))
        y_val = self.place(
            dd.from_pandas(pd.Series(data.y_val, index=data.x_val.index), npartitions=workers, sort=False)
        )
        if plan["matrix"] == "DaskQuantileDMatrix":
            dtrain = xgb.dask.DaskQuantileDMatrix(
                self.client,
                data.x_train,
                data.train_labels,
                feature_names=data.features,
                max_bin=resolved.get("max_bin", 256),
                enable_categorical=categorical,
            )
            dval = xgb.dask.DaskQuantileDMatrix(
                self.client, x_val, y_val, feature_names=data.features, ref=dtrain, enable_categorical=categorical
            )
        else:
            dtrain = xgb.dask.DaskDMatrix(
                self.client,
                data.x_train,
                data.train_labels,
                feature_names=data.features,
                enable_categorical=categorical,
            )
            dval = xgb.dask.DaskDMatrix(
                self.client, x_val, y_val, feature_names=data.features, enable_categorical=categorical
            )
        mlflow.log_params({"engine": self.name, "dask_workers": workers})
        started = time.perf_counter()
        output = xgb.dask.train(
            self.client,
            dict(resolved),
            dtrain,
            num_boost_round=int(params["n_estimators"]),
            evals=[(dval, "validation")],  # one evaluation set, as the in-memory engine (fit.train_booster)
            early_stopping_rounds=int(params["early_stopping_rounds"]) if params.get("early_stopping_rounds") else None,
            verbose_eval=False,
        )
        train_seconds = time.perf_counter() - started
        booster = output["booster"]
        best_iteration = int(getattr(booster, "best_iteration", booster.num_boosted_rounds() - 1))
        return score_fitted(params, plan, data, booster, resolved, output["history"], best_iteration, train_seconds)

    def close(self) -> None:
        """Disconnect (the cluster belongs to whoever started it)."""
        self.client.close()
