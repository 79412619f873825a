"""The serving benchmark's baseline: a bare ``kserve.Model`` XGBoost server, as KServe's own xgbserver serves.

Run with the serving environment's Python: ``python benchmarks/bare_kserve_server.py <model.ubj> <name> <http>
<grpc>``. Its ``predict`` is the one of KServe's ``xgbserver`` (``get_predict_input`` -> ``DMatrix`` ->
``Booster.predict`` -> ``get_predict_response``): no prediction log, no lineage, no validation, nothing of the
bundle's own server, so the ratio of the bundle's predictor to it is what the bundle adds.
"""

from __future__ import annotations

import logging
import sys

import xgboost as xgb
from kserve.utils.utils import get_predict_input, get_predict_response

import kserve


class BareXGBoostModel(kserve.Model):
    def __init__(self, name: str, model_file: str) -> None:
        super().__init__(name)
        # KServe's xgbserver default (--nthread 1): more OpenMP threads than that only spin against the event loop.
        self.booster = xgb.Booster(params={"nthread": 1}, model_file=model_file)
        self.ready = True

    def predict(self, payload, headers=None, response_headers=None):
        instances = get_predict_input(payload)
        result = self.booster.predict(xgb.DMatrix(instances, nthread=1))
        return get_predict_response(payload, result, self.name)


if __name__ == "__main__":
    model_file, name, http_port, grpc_port = sys.argv[1:5]
    logging.getLogger("uvicorn.access").disabled = True  # as the bundle's server runs in the benchmark
    kserve.ModelServer(http_port=int(http_port), grpc_port=int(grpc_port), enable_latency_logging=False).start(
        [BareXGBoostModel(name, model_file)]
    )
