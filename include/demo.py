"""``make demo``: the whole pipeline on one machine, through Airflow itself.

1. Generate 24 days of example card transactions into the landing zone (deterministic; with
   ``--inject-drift`` the last three days carry covariate drift).
2. Run ``ml_training_pipeline`` on the first 21 days: ingest, validate, Feast, train, gate, deploy
   to the local endpoint, smoke-test.
3. Run ``feature_materialization`` for each of the 3 newer days (the daily path).
4. Run ``drift_monitoring`` on those 3 days against the champion's training set.
5. Print a summary and write it to build/demo/summary.json.

Everything is idempotent: running it again replaces partitions and re-materializes the same
intervals; training registers a new version that the gate compares with the champion.

``make demo MODEL=<name>`` (``--model <name>``) does the same for a model spec
(``include/models/<name>.yaml``, e.g. from ``make new-model``) with the DAGs generated from it, on the
days already in its landing zone: ``<name>__training`` on all but the newest days, then
``<name>__materialization`` for each of the newest days (up to 3, when there are at least 4 days) and
``<name>__drift`` over them. Nothing is generated: the data is the user's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
import urllib.request
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import TextIO

ROOT = Path(__file__).resolve().parents[1]
DAG_FOLDERS = (ROOT / "dags",)
TRAIN_END = date(2026, 11, 21)
TRAIN_DAYS = 21
MONITOR_DAYS = 3
ROWS_PER_DAY = 3000


class DemoError(RuntimeError):
    """A demo step failed; the message names the DAG run and the failed tasks."""


_SINKS: dict[Path, TextIO] = {}


def _sink(log_file: Path) -> TextIO:
    """The open log file, kept open for the whole process.

    Airflow's structlog loggers keep the stream they first wrote to; were the file closed after one DAG run,
    the next run's first log line (``Bulk-writing dags to db``) would fail with "I/O operation on closed file".
    """
    if log_file not in _SINKS or _SINKS[log_file].closed:
        _SINKS[log_file] = log_file.open("a", buffering=1)
    return _SINKS[log_file]


@contextlib.contextmanager
def _output_to(log_file: Path):
    """Send everything Airflow, its loggers and task subprocesses print to ``log_file``.

    Both levels are redirected: file descriptors 1 and 2 (subprocesses, C extensions) and Python's
    ``sys.stdout``/``sys.stderr`` plus the logging handlers that hold them (which may not be fd-backed).
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    originals = (sys.stdout, sys.stderr)
    sink = _sink(log_file)
    os.dup2(sink.fileno(), 1)
    os.dup2(sink.fileno(), 2)
    handlers = [
        h
        for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
        if isinstance(logger, logging.Logger)
        for h in logger.handlers
        if isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) in originals
    ]
    streams = []
    for handler in handlers:
        try:
            streams.append((handler, handler.setStream(sink)))
        except AttributeError:  # logging's last-resort handler reads sys.stderr itself (redirected below)
            pass
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield
    finally:
        for handler, stream in streams:
            if stream is not None:
                handler.setStream(stream)
        sink.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


def _task_lines(dag_run) -> list[tuple[str, str, float | None]]:
    """``(task_id, state, seconds)`` of each task of ``dag_run``, in the order they started."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id).all()
        rows = []
        for ti in sorted(tis, key=lambda t: (t.start_date is None, t.start_date or 0, t.task_id)):
            state = ti.state.value if hasattr(ti.state, "value") else str(ti.state)
            seconds = (ti.end_date - ti.start_date).total_seconds() if ti.start_date and ti.end_date else None
            rows.append((ti.task_id, state, seconds))
        return rows


def _run(dag_id: str, log_file: Path, *, conf: dict | None = None, logical_date=None) -> object:
    """Run ``dag_id`` through ``dag.test()``: one line per task here, Airflow's own logs in ``log_file``."""
    from include.airflow_runner import run_dag

    started = time.perf_counter()
    with _output_to(log_file):
        dag_run = run_dag(dag_id, DAG_FOLDERS, conf=conf, logical_date=logical_date)
    rows = _task_lines(dag_run)
    for task_id, state, seconds in rows:
        took = f"{seconds:6.1f} s" if seconds is not None else "      -"
        print(f"    {task_id:<28} {state:<10} {took}")
    failed = {task_id: state for task_id, state, _ in rows if state not in ("success", "skipped")}
    state = dag_run.state.value if hasattr(dag_run.state, "value") else str(dag_run.state)
    print(f"  {dag_id}: {state} in {time.perf_counter() - started:.1f} s")
    if failed or state != "success":
        raise DemoError(
            f"{dag_id} run {dag_run.run_id} ended {state}; tasks not successful: {failed}. "
            f"Airflow's logs of this run are in {log_file}."
        )
    return dag_run


def _predict(endpoint_url: str, model_name: str, training_set: dict) -> tuple[float, str]:
    """The endpoint's answer for the training set's first row (categorical features sent as text), and its id."""
    from mlops_provider.serving.analysis import sample_rows

    request = urllib.request.Request(
        f"{endpoint_url}/v2/models/{model_name}/infer",
        data=json.dumps(sample_rows(endpoint_url, model_name, training_set).request()).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        payload = json.load(response)
    return float(payload["outputs"][0]["data"][0]), str(payload.get("id"))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inject-drift", action="store_true", help="drift the 3 monitored days")
    parser.add_argument("--rows-per-day", type=int, default=ROWS_PER_DAY)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "demo" / "summary.json")
    parser.add_argument("--model", default=None, help="a model spec's name: run its generated DAGs instead")
    args = parser.parse_args(argv)
    if args.model:
        return spec_demo(args.model, args.out)
    logging.getLogger("airflow").setLevel(logging.WARNING)
    started = time.perf_counter()
    log_file = args.out.parent / "airflow.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.write_text("")
    print(f"Airflow's logs of every run go to {log_file}")

    from include.airflow_runner import asset_triggered_runs, scheduler_pass, set_paused, task_xcom
    from include.data_generator import generate_days
    from include.fraud_example import DATASET as EXAMPLE_DATASET
    from include.fraud_example import MODEL_NAME as EXAMPLE_MODEL
    from mlops_provider.hooks.mlflow import MlflowHook
    from mlops_provider.settings import get_settings

    settings = get_settings()
    first_day = TRAIN_END - timedelta(days=TRAIN_DAYS - 1)
    monitor_end = TRAIN_END + timedelta(days=MONITOR_DAYS)
    landing = settings.data_root
    print(f"1/4 generating {TRAIN_DAYS + MONITOR_DAYS} days x {args.rows_per_day} transactions into {landing}/landing")
    generate_days(landing, first_day, TRAIN_DAYS, rows_per_day=args.rows_per_day, seed=7)
    generate_days(
        landing,
        TRAIN_END + timedelta(days=1),
        MONITOR_DAYS,
        rows_per_day=args.rows_per_day,
        seed=8,
        covariate_drift=0.8 if args.inject_drift else 0.0,
    )

    print("2/4 training pipeline")
    training = _run("ml_training_pipeline", log_file, conf={"as_of": TRAIN_END.isoformat(), "window_days": TRAIN_DAYS})
    print("3/4 daily feature materialization for the monitored days")
    import pendulum

    for offset in range(1, MONITOR_DAYS + 1):
        day = TRAIN_END + timedelta(days=offset)
        _run(
            "feature_materialization", log_file, logical_date=pendulum.datetime(day.year, day.month, day.day, tz="UTC")
        )
    print("4/4 drift monitoring")
    # As `make up` would have it: the training pipeline is unpaused, so asset events queue its runs.
    set_paused("ml_training_pipeline", False)
    runs_before = asset_triggered_runs("ml_training_pipeline")
    monitoring = _run(
        "drift_monitoring", log_file, conf={"as_of": monitor_end.isoformat(), "window_days": MONITOR_DAYS}
    )
    scheduler_pass()
    retraining = [run for run in asset_triggered_runs("ml_training_pipeline") if run not in runs_before]

    trained = task_xcom(training, "train") or {}
    gate = task_xcom(training, "evaluation_gate") or {}
    deployed = task_xcom(training, "deploy") or {}
    drift = task_xcom(monitoring, "check_drift") or {}
    validation = task_xcom(training, "validate") or {}
    client = MlflowHook().get_client()
    champion = client.get_model_version_by_alias(EXAMPLE_MODEL, "champion")
    endpoint_url = deployed.get("endpoint_url") or f"http://127.0.0.1:{settings.local_serving_port}"

    training_set = task_xcom(training, "build_training_set") or {}
    prediction, request_id = _predict(endpoint_url, EXAMPLE_MODEL, training_set)

    summary = {
        "model_name": EXAMPLE_MODEL,
        "model_version": str(trained.get("model_version")),
        "champion_version": str(champion.version),
        "gate_decision": gate.get("decision"),
        "endpoint_url": endpoint_url,
        "sample_prediction": round(prediction, 6),
        # python -m include.trace <id> walks it back to the version, run, training set and validation reports.
        "sample_request_id": request_id,
        "drift_detected": bool(drift.get("drift_detected")),
        "drift_share": None if drift.get("drift_share") is None else round(float(drift["drift_share"]), 4),
        # One scheduler pass after the drift check: the runs it created for the training pipeline
        # and the asset events each consumed (daily validated data also schedules training).
        "retraining_runs_queued": [{"run_id": run_id, "triggered_by": names} for run_id, names in retraining],
        "reports": {
            "drift_html": drift.get("report_uri"),
            "drift_summary": drift.get("summary_uri"),
            "validation": [p["report_uri"] for p in validation.get("partitions", [])][-1:],
            "mlflow": MlflowHook().ui_url() or settings.mlflow_local_tracking_uri,
        },
        "dataset": EXAMPLE_DATASET,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2))
    print()
    print(
        f"model          {summary['model_name']} version {summary['model_version']} (gate: {summary['gate_decision']})"
    )
    print(f"alias          champion -> version {summary['champion_version']}")
    print(f"endpoint       {endpoint_url}/v2/models/{EXAMPLE_MODEL}/infer  (prediction for one row: {prediction:.4f})")
    share = summary["drift_share"]
    share_text = f"{share:.2f}" if isinstance(share, int | float) else "n/a"
    print(
        f"drift          {'DETECTED' if summary['drift_detected'] else 'none'} (share of drifted features {share_text})"
    )
    for run in summary["retraining_runs_queued"]:
        events = Counter(run["triggered_by"])
        triggers = ", ".join(f"{name} x{count}" if count > 1 else name for name, count in sorted(events.items()))
        print(f"retraining     queued {run['run_id']} (asset events: {triggers})")
    print(f"drift report   {summary['reports']['drift_html']}")
    print(f"MLflow         {summary['reports']['mlflow']}")
    print(f"summary        {args.out}  ({summary['wall_seconds']} s)")
    return summary


def landed_days(data_root: str, dataset: str) -> list[date]:
    """The UTC days with a partition in ``<data_root>/landing/<dataset>/dt=YYYY-MM-DD/``, oldest first."""
    from mlops_provider.storage import storage_path

    folder = storage_path(f"{data_root.rstrip('/')}/landing/{dataset}")
    if not folder.exists():
        return []
    return sorted(date.fromisoformat(p.name.removeprefix("dt=")) for p in folder.iterdir() if p.name.startswith("dt="))


def split_days(days: list[date]) -> tuple[date, int, list[date]]:
    """``(training as_of, training window_days, monitored days)``: the newest days (up to 3) are monitored
    when at least 4 days landed, so drift compares days the model never saw with its training set."""
    monitored = days[-min(MONITOR_DAYS, len(days) // 4) :] if len(days) >= 4 else []
    training = days[: len(days) - len(monitored)]
    return training[-1], (training[-1] - training[0]).days + 1, monitored


def spec_demo(model: str, out: Path) -> dict:
    """Run a model spec's generated DAGs on its landed days and print a summary."""
    import pendulum

    from include.airflow_runner import task_xcom
    from mlops_provider.hooks.mlflow import MlflowHook
    from mlops_provider.settings import get_settings
    from mlops_provider.spec.dags import DRIFT, MATERIALIZATION, TRAINING
    from mlops_provider.spec.load import SPEC_SUFFIXES, load_spec

    logging.getLogger("airflow").setLevel(logging.WARNING)
    started = time.perf_counter()
    settings = get_settings()
    candidates = [settings.model_specs_folder / f"{model}{suffix}" for suffix in SPEC_SUFFIXES]
    spec_file = next((c for c in candidates if c.is_file()), None)
    if spec_file is None:
        known = sorted(p.stem for p in settings.model_specs_folder.glob("*.y*ml"))
        raise DemoError(
            f"no spec {model!r} in {settings.model_specs_folder} (specs: {', '.join(known) or 'none'}); "
            "write one with make new-model DATA=... LABEL=... TIMESTAMP=... ENTITY=..."
        )
    spec = load_spec(spec_file, settings.project_root)
    days = landed_days(settings.data_root, spec.dataset)
    if not days:
        raise DemoError(
            f"nothing landed for {spec.dataset!r} under {settings.data_root}/landing/{spec.dataset}/dt=YYYY-MM-DD/; "
            "make new-model lands its data file there"
        )
    as_of, window, monitored = split_days(days)
    log_file = out.parent / "airflow.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.write_text("")
    print(f"Airflow's logs of every run go to {log_file}")
    print(f"1/3 {spec.name}__{TRAINING}: {window} days up to {as_of} ({spec.task}, label {spec.label})")
    training = _run(f"{spec.name}__{TRAINING}", log_file, conf={"as_of": as_of.isoformat(), "window_days": window})
    monitoring = None
    if monitored:
        print(f"2/3 {spec.name}__{MATERIALIZATION} for {', '.join(map(str, monitored))}")
        for day in monitored:
            _run(
                f"{spec.name}__{MATERIALIZATION}",
                log_file,
                logical_date=pendulum.datetime(day.year, day.month, day.day, tz="UTC"),
            )
        if spec.drift.enabled:
            print(f"3/3 {spec.name}__{DRIFT} over the {len(monitored)} newest days")
            monitoring = _run(
                f"{spec.name}__{DRIFT}",
                log_file,
                conf={"as_of": monitored[-1].isoformat(), "window_days": len(monitored)},
            )
    else:
        print(f"2/3, 3/3 skipped: {len(days)} days landed; materialization and drift need at least 4")

    trained = task_xcom(training, "train") or {}
    gate = task_xcom(training, "evaluation_gate") or {}
    deployed = task_xcom(training, "deploy") or {}
    drift = (task_xcom(monitoring, "check_drift") if monitoring is not None else None) or {}
    champion = None
    with contextlib.suppress(Exception):  # no champion yet when the gate refused the first version
        champion = MlflowHook().get_client().get_model_version_by_alias(spec.name, "champion").version
    endpoint_url = deployed.get("endpoint_url") or f"http://127.0.0.1:{settings.local_serving_port}"
    prediction = request_id = None
    if deployed:
        training_set = task_xcom(training, "build_training_set") or {}
        prediction, request_id = _predict(endpoint_url, spec.name, training_set)
    summary = {
        "model_name": spec.name,
        "task": spec.task,
        "days": [days[0].isoformat(), days[-1].isoformat()],
        "training_window": [(as_of - timedelta(days=window - 1)).isoformat(), as_of.isoformat()],
        "model_version": None if trained.get("model_version") is None else str(trained["model_version"]),
        "champion_version": None if champion is None else str(champion),
        "gate_decision": gate.get("decision"),
        "endpoint_url": endpoint_url if deployed else None,
        "sample_prediction": None if prediction is None else round(prediction, 6),
        "sample_request_id": request_id,
        "monitored_days": [d.isoformat() for d in monitored],
        "drift_detected": bool(drift.get("drift_detected")) if drift else None,
        "drift_share": None if drift.get("drift_share") is None else round(float(drift["drift_share"]), 4),
        "drift_report": drift.get("report_uri"),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))
    print()
    print(f"model          {spec.name} version {summary['model_version']} (gate: {summary['gate_decision']})")
    print(f"alias          champion -> version {summary['champion_version']}")
    if prediction is not None:
        print(f"endpoint       {endpoint_url}/v2/models/{spec.name}/infer  (prediction for one row: {prediction:.4f})")
    if drift:
        share = summary["drift_share"]
        print(
            f"drift          {'DETECTED' if summary['drift_detected'] else 'none'} "
            f"(share of drifted features {share if share is not None else 'n/a'})"
        )
        print(f"drift report   {summary['drift_report']}")
    print(f"summary        {out}  ({summary['wall_seconds']} s)")
    return summary


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # a clear one-line cause for the terminal, the traceback above it
        print(f"\nmake demo failed: {error}", file=sys.stderr)
        raise
