"""``python -m include.trace <request_id>``: which data and code made this prediction.

Walks one served request back through the systems of record (:mod:`mlops_provider.trace`): the prediction log
row(s) with that request id (``<data_root>/predictions/<model>/``: features as served, prediction, model version,
latency) -> the MLflow model version and its aliases -> the run that trained it (parameters, code version,
Airflow run) -> the training-set snapshot (content hash, rows, feature service, window, partition versions) ->
the validation report of each day of that window. Prints one JSON document; exits 2 with a message when the
request id is in no log. The MLOps page shows the same walk (``/mlops/?request_id=<id>``).

Options: ``--model <name>`` searches one model's log only; ``--days N`` only the newest N days of logs.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from mlops_provider.trace import TraceError, find_request

__all__ = ["TraceError", "find_request", "main", "trace"]


def trace(request_id: str, model: str | None = None, days: int | None = None) -> dict[str, Any]:
    """Return the lineage of one served request (:func:`mlops_provider.trace.trace_request`)."""
    from mlops_provider.trace import trace_request

    return trace_request(request_id, model, days)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m include.trace", description=__doc__.split("\n\n")[0])
    parser.add_argument("request_id")
    parser.add_argument("--model", default=None, help="search this model's prediction log only")
    parser.add_argument("--days", type=int, default=None, help="search only the newest N days of logs")
    args = parser.parse_args(argv)
    try:
        print(json.dumps(trace(args.request_id, args.model, args.days), indent=2, default=str))
    except TraceError as err:
        print(str(err), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
