"""``python delayed_model_server.py <delay_ms> [model server args]``: the model server, every prediction delayed.

A test stand-in for a slower version (the live analysis' latency check): the bundle's predictor with a fixed sleep
inside ``predict_matrix``, so both the request's metrics and the prediction log's ``latency_ms`` include it.
Nothing in the product runs this.
"""

from __future__ import annotations

import sys
import time

from mlops_serving import __main__ as entry
from mlops_serving import predictor


class DelayedPredictor(predictor.XGBoostPredictor):
    """The predictor, ``delay_seconds`` slower per request."""

    delay_seconds = 0.0

    def predict_matrix(self, matrix):
        time.sleep(self.delay_seconds)
        return super().predict_matrix(matrix)


if __name__ == "__main__":
    DelayedPredictor.delay_seconds = float(sys.argv[1]) / 1000.0
    predictor.XGBoostPredictor = DelayedPredictor  # type: ignore[misc]  # what entry.main instantiates
    entry.main(sys.argv[2:])
