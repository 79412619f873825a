"""Cost of the per-version Prometheus metrics on the model server's request path, in microseconds per request.

Run with the serving environment: ``.venv-serving/bin/python benchmarks/serving_metrics.py``. In one process, on a
small real XGBoost model (binary, 20 features) and a 3-class one:

* ``baseline``: ``XGBoostPredictor.predict`` of a one-row V2 request with the metrics off (``meter = None``);
* ``metered``: the same with the metrics on (``predictions`` in ``predict``), plus the ``served`` call its
  ``__call__`` makes;
* ``metrics_only``: the metric calls alone (``served`` + ``predictions`` of one row).

Prints the median of interleaved rounds for each, the overhead (metered - baseline) and the ratio metered/baseline,
and writes ``build/bench/serving_metrics.json``.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "kserve"))
OUT = ROOT / "build" / "bench"


def _model(folder: Path, classes: int) -> str:
    import xgboost as xgb

    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 20)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int) if classes == 2 else rng.integers(0, classes, size=500)
    params = {"objective": "binary:logistic"} if classes == 2 else {"objective": "multi:softprob", "num_class": classes}
    booster = xgb.train({**params, "max_depth": 4}, xgb.DMatrix(X, label=y), num_boost_round=30)
    folder.mkdir(parents=True)
    booster.save_model(str(folder / "model.json"))
    return str(folder)


def _time_per_call(fn, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) / calls * 1e6


def bench(classes: int, folder: Path, rounds: int, calls: int) -> dict[str, float]:
    from kserve.protocol.infer_type import InferInput, InferRequest

    from mlops_serving.predictor import XGBoostPredictor

    model = XGBoostPredictor(f"bench{classes}", _model(folder, classes), model_version="1")
    model.load()
    meter = model.meter
    assert meter is not None
    row = np.random.default_rng(1).normal(size=(1, 20)).astype(np.float32)

    def request() -> InferRequest:
        tensor = InferInput(name="input-0", shape=[1, 20], datatype="FP32")
        tensor.set_data_from_numpy(row, binary_data=False)
        return InferRequest(model_name=model.name, infer_inputs=[tensor], request_id="r")

    def baseline() -> None:
        model.meter = None
        model.predict(request())

    def metered() -> None:
        model.meter = meter
        model.predict(request())
        meter.served(0.001)

    predictions = model.predict_matrix(row)

    def metrics_only() -> None:
        meter.served(0.001)
        meter.predictions(predictions)

    results: dict[str, list[float]] = {"baseline": [], "metered": [], "metrics_only": []}
    for _ in range(rounds):  # interleaved, so bursts of other work hit every variant alike
        for name, fn in (("baseline", baseline), ("metered", metered), ("metrics_only", metrics_only)):
            fn()
            results[name].append(_time_per_call(fn, calls))
    return {name: statistics.median(values) for name, values in results.items()}


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for classes, label in ((2, "binary"), (3, "multiclass")):
            result = bench(classes, Path(tmp) / label, rounds=7, calls=2000)
            overhead = result["metered"] - result["baseline"]
            ratio = result["metered"] / result["baseline"]
            print(
                f"{label:10s} baseline {result['baseline']:7.1f} us  metered {result['metered']:7.1f} us  "
                f"overhead {overhead:5.1f} us (ratio {ratio:.3f})  metric calls alone {result['metrics_only']:5.1f} us"
            )
            rows.append(
                {"metric": f"{label}_metrics_overhead", "value": overhead, "unit": "us",
                 "baseline": result["baseline"], "ratio": ratio}
            )  # fmt: skip
            rows.append({"metric": f"{label}_metric_calls", "value": result["metrics_only"], "unit": "us",
                         "baseline": result["baseline"], "ratio": result["metrics_only"] / result["baseline"]})  # fmt: skip
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "serving_metrics.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
