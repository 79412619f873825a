"""``make label-feedback``: delayed labels through Airflow, and the live performance they show.

Runs the label feedback DAG (``label_feedback`` for the shipped example, ``<model>__label_feedback`` for a model
spec with a ``labels:`` section) for ``--as-of`` (default: today, UTC) and prints the live metric per prediction day
and model version, and the verdict on the ``champion``. The labels are whatever landed in
``<data_root>/labels/<dataset>/dt=<arrival day>/`` (``request_id``, ``request_row``, the label column).

``--simulate right|wrong`` first lands a label for every prediction logged in the window (binary models): agreeing
with the scores, or contradicting them, as when the world changed under a deployed model; with ``wrong`` the drop
exceeds ``max_performance_drop`` and the DAG emits ``drift.<model>``, which schedules retraining. Simulated labels
are the only labels of their run, so the verdict counts every logged row (``min_labeled_rows`` = their number).
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def simulate_labels(data_root: str, model: str, dataset: str, label: str, as_of: date, days: int, wrong: bool) -> int:
    """Land a label for each prediction of ``model`` logged in ``as_of - days .. as_of``; return how many."""
    from mlops_provider.names import zone_uri
    from mlops_provider.partitions import read_window
    from mlops_provider.storage import write_parquet_atomic

    log = read_window(zone_uri(data_root, "predictions", model), as_of - timedelta(days=days), as_of).frame
    if log.empty:
        raise SystemExit(f"No predictions of {model} logged up to {as_of}: run make demo (or send requests) first.")
    high = log["prediction"] > log["prediction"].median()
    labels = log[["request_id", "request_row"]].assign(**{label: (~high if wrong else high).astype(int).to_numpy()})
    write_parquet_atomic(labels, f"{zone_uri(data_root, 'labels', dataset)}/dt={as_of}/simulated.parquet")
    return len(labels)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="a model spec's name (default: the shipped example)")
    parser.add_argument("--as-of", default=None, help="last day of the window, YYYY-MM-DD (default: today)")
    parser.add_argument("--simulate", choices=("right", "wrong"), help="first land labels for the logged predictions")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "demo" / "label_feedback.log")
    args = parser.parse_args(argv)
    logging.getLogger("airflow").setLevel(logging.WARNING)

    from include.airflow_runner import task_xcom
    from include.demo import _run
    from include.fraud_example import DATASET, LABEL_COLUMN, MODEL_NAME
    from mlops_provider.settings import get_settings
    from mlops_provider.spec.dags import LABEL_FEEDBACK, dag_id
    from mlops_provider.ui.data import collect_live_performance

    settings = get_settings()
    model = args.model or MODEL_NAME
    as_of = date.fromisoformat(args.as_of) if args.as_of else datetime.now(UTC).date()
    if model == MODEL_NAME:
        dag, dataset, label, max_delay_days = "label_feedback", DATASET, LABEL_COLUMN, 7
    else:
        from mlops_provider.spec.load import load_spec

        spec = load_spec(settings.model_specs_folder / f"{model}.yaml", settings.project_root)
        if spec.labels is None:
            raise SystemExit(f"{model}'s spec has no labels: section, so it has no {model}__{LABEL_FEEDBACK} DAG.")
        if args.simulate and spec.task != "binary":
            raise SystemExit("--simulate lands 0/1 labels: binary models only.")
        dag, dataset, label, max_delay_days = (
            dag_id(spec, LABEL_FEEDBACK),
            spec.dataset,
            spec.label,
            spec.labels.max_delay_days,
        )
    conf: dict = {"as_of": as_of.isoformat()}
    if args.simulate:
        landed = simulate_labels(
            settings.data_root, model, dataset, label, as_of, max_delay_days, wrong=args.simulate == "wrong"
        )
        conf["min_labeled_rows"] = landed
        print(f"landed {landed} {args.simulate} labels in {settings.data_root}/labels/{dataset}/dt={as_of}/")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    dag_run: Any = _run(dag, args.out, conf=conf)
    verdict = task_xcom(dag_run, "label_feedback") or {}
    print("\nprediction day  version  metric        labeled  unlabeled")
    for row in collect_live_performance(settings.data_root, model):
        value = "n/a" if row["value"] is None else f"{row['value']:.3f}"
        print(
            f"{row['day']}      v{row['model_version']:<6} {row['metric']} {value:<6} "
            f"{row['labeled_rows']:>7}  {row['unlabeled_rows']:>9}"
        )
    decision = verdict.get("live_performance") or {}
    print(f"\nverdict         {decision.get('status', 'skipped')}: {decision.get('reason', 'see ' + str(args.out))}")
    if verdict.get("drift_detected"):
        print(f"retraining      drift.{model} emitted: the training DAG is scheduled on it")
    return {**verdict, "dag_id": dag, "run_id": dag_run.run_id}


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # a clear one-line cause for the terminal, the traceback above it
        print(f"\nmake label-feedback failed: {error}", file=sys.stderr)
        raise
