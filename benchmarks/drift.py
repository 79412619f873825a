"""Benchmark: the fast drift engine against Evidently's DataDriftPreset on the same data.

Both run in this process on the same frames (default 1M rows x 20 numeric columns, half of the
columns shifted), timed with ``time.perf_counter``; the per-column verdicts must be identical (the
script exits 1 otherwise). Writes ``build/bench/drift.json`` as a list of
``{"metric", "value", "unit", "baseline", "ratio"}`` rows.

    python benchmarks/drift.py [--rows 1000000] [--columns 20] [--out build/bench/drift.json]

At scale (``--scale``, e.g. ``--rows 3000000 --columns 1000 --scale``) the frames do not fit in memory: they are
generated into Parquet files under ``--work`` (default /tmp, removed afterwards) a slice of rows at a time, the
engine reads them ``--columns-per-chunk`` columns at a time (``compute_drift_parquet``), and Evidently runs on a
sample of ``--evidently-columns`` columns: the same-run baseline for the verdicts of those columns and for the
time per column. Prints the engine's time and peak RSS against the targets (5 min, 4 GiB).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "providers" / "mlops" / "src"))
sys.path.insert(0, str(ROOT))

from benchmarks._records import emit, record  # noqa: E402


def make_frames(rows: int, columns: int, seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference and current frames: every other column shifted by a growing amount in ``current``."""
    rng = np.random.default_rng(seed)
    ref = {}
    cur = {}
    for i in range(columns):
        name = f"f{i:02d}"
        ref[name] = rng.normal(0.0, 1.0 + i / 10, rows)
        shift = 0.0 if i % 2 == 0 else 0.04 * (i + 1)  # small to large shifts around the 0.1 threshold
        cur[name] = rng.normal(shift, 1.0 + i / 10, rows)
    return pd.DataFrame(ref), pd.DataFrame(cur)


def evidently_verdicts(reference: pd.DataFrame, current: pd.DataFrame) -> tuple[dict[str, tuple[str, bool]], float]:
    """Per-column (test display name, drifted) and the drifted share from Evidently's preset."""
    from evidently import Report
    from evidently.presets import DataDriftPreset

    snapshot = Report([DataDriftPreset()], include_tests=True).run(current, reference).dict()
    methods = {}
    share = float("nan")
    for metric in snapshot["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            methods[config["column"]] = config["method"]
        elif config["type"].endswith("DriftedColumnsCount"):
            share = float(metric["value"]["share"])
    verdicts = {}
    for test in snapshot["tests"]:
        params = test["metric_config"]["params"]
        if params["type"].endswith("ValueDrift"):
            verdicts[params["column"]] = (methods[params["column"]], test["status"] == "FAIL")
    return verdicts, share


def write_parquet_frames(work: Path, rows: int, columns: int, seed: int = 7, slice_rows: int = 50_000) -> None:
    """``make_frames`` data written to ``work/{reference,current}.parquet`` without holding a whole frame."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = [f"f{i:04d}" for i in range(columns)]
    schema = pa.schema([(name, pa.float64()) for name in names])
    for side in ("reference", "current"):
        rng = np.random.default_rng(seed if side == "reference" else seed + 1)
        with pq.ParquetWriter(work / f"{side}.parquet", schema) as writer:
            for lo in range(0, rows, slice_rows):
                n = min(slice_rows, rows - lo)
                arrays = []
                for i in range(columns):
                    shift = 0.0 if side == "reference" or i % 2 == 0 else 0.04 * (i % 20 + 1)
                    arrays.append(pa.array(rng.normal(shift, 1.0 + (i % 20) / 10, n)))
                writer.write_table(pa.Table.from_arrays(arrays, schema=schema))


def main_scale(args: argparse.Namespace) -> int:
    """The at-scale run: chunked engine over Parquet, Evidently on a column sample."""
    import resource
    import shutil
    import tempfile

    import pyarrow.dataset as pads

    from mlops_provider.drift.engine import compute_drift_parquet

    work = Path(tempfile.mkdtemp(prefix="drift-bench-", dir=args.work))
    try:
        started = time.perf_counter()
        write_parquet_frames(work, args.rows, args.columns)
        print(
            f"generated {args.rows:,} rows x {args.columns} columns per side in {time.perf_counter() - started:.0f} s"
        )
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        fast = compute_drift_parquet(
            str(work / "reference.parquet"), str(work / "current.parquet"), columns_per_chunk=args.columns_per_chunk
        )
        fast_s = time.perf_counter() - started
        peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        sample = [c.column for c in fast.columns][:: max(1, args.columns // args.evidently_columns)][
            : args.evidently_columns
        ]
        import evidently  # noqa: F401  (import time is not part of the measured run)

        reference = pads.dataset(work / "reference.parquet").to_table(columns=sample).to_pandas()
        current = pads.dataset(work / "current.parquet").to_table(columns=sample).to_pandas()
        started = time.perf_counter()
        ev_verdicts, _ = evidently_verdicts(reference, current)
        evidently_s = time.perf_counter() - started
    finally:
        shutil.rmtree(work, ignore_errors=True)
    by_column = fast.by_column()
    mismatches = {
        c: {"evidently": ev_verdicts.get(c), "fast": (by_column[c].stattest_display_name, by_column[c].drift_detected)}
        for c in sample
        if ev_verdicts.get(c) != (by_column[c].stattest_display_name, by_column[c].drift_detected)
    }
    per_column_fast, per_column_ev = fast_s / fast.number_of_columns, evidently_s / len(sample)
    size = f"{args.rows} rows x {args.columns} numeric columns"
    load = os.getloadavg()
    records = [
        record(f"drift engine, chunked over Parquet ({size})", fast_s, "s (target <= 300)"),
        record("drift engine peak RSS", peak_gib, "GiB (target <= 4)"),
        record("drift engine seconds per column", per_column_fast, "s", round(per_column_ev, 4)),
        record(f"Evidently seconds per column ({len(sample)} sampled columns)", per_column_ev, "s"),
        record("sampled columns with verdicts different from Evidently", len(mismatches), "columns"),
    ]
    emit("drift_scale", records)
    print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores; "
          f"peak RSS before the engine {rss_before / 2**20:.2f} GiB")  # fmt: skip
    print(f"time {fast_s:.0f} s: {'met' if fast_s <= 300 else 'missed'} (<= 300 s); peak RSS {peak_gib:.2f} GiB: "
          f"{'met' if peak_gib <= 4 else 'missed'} (<= 4 GiB); drifted {fast.number_of_drifted_columns}/"
          f"{fast.number_of_columns}; identical verdicts on {len(sample)} sampled columns: {not mismatches}")  # fmt: skip
    return 1 if mismatches else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--columns", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench" / "drift.json")
    parser.add_argument("--scale", action="store_true", help="Parquet-backed, column-chunked run (see the docstring)")
    parser.add_argument("--columns-per-chunk", type=int, default=50)
    parser.add_argument("--evidently-columns", type=int, default=10)
    parser.add_argument("--work", default="/tmp", help="folder for the generated Parquet files (removed after)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    if args.scale:
        return main_scale(args)

    reference, current = make_frames(args.rows, args.columns)
    from mlops_provider.drift import compute_drift

    started = time.perf_counter()
    fast = compute_drift(reference, current)
    fast_s = time.perf_counter() - started

    import evidently  # noqa: F401  (import time is not part of the measured run)

    started = time.perf_counter()
    ev_verdicts, ev_share = evidently_verdicts(reference, current)
    evidently_s = time.perf_counter() - started

    fast_verdicts = {c.column: (c.stattest_display_name, c.drift_detected) for c in fast.columns}
    mismatches = {
        col: {"evidently": ev_verdicts.get(col), "fast": fast_verdicts.get(col)}
        for col in sorted(set(ev_verdicts) | set(fast_verdicts))
        if ev_verdicts.get(col) != fast_verdicts.get(col)
    }
    ratio = fast_s / evidently_s  # value / baseline, as in every benchmark here; the speed-up is its inverse
    size = f"{args.rows} rows x {args.columns} numeric columns"
    rows = [
        {
            "metric": f"drift decision, fast engine ({size})",
            "value": round(fast_s, 3),
            "unit": "s",
            "baseline": round(evidently_s, 3),
            "ratio": round(ratio, 4),
        },
        {
            "metric": f"drift decision, Evidently DataDriftPreset ({size})",
            "value": round(evidently_s, 3),
            "unit": "s",
            "baseline": None,
            "ratio": None,
        },
        {
            "metric": "drifted columns, fast engine",
            "value": fast.number_of_drifted_columns,
            "unit": "columns",
            "baseline": round(ev_share * args.columns),
            "ratio": None,
        },
        {
            "metric": "per-column verdicts different from Evidently",
            "value": len(mismatches),
            "unit": "columns",
            "baseline": 0,
            "ratio": None,
        },
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2) + "\n")
    print(
        f"data: {size}; drifted: fast {fast.number_of_drifted_columns}/{fast.number_of_columns} "
        f"(share {fast.share_of_drifted_columns:.2f}), Evidently share {ev_share:.2f}"
    )
    print(
        f"fast engine: {fast_s:.2f} s   Evidently DataDriftPreset: {evidently_s:.2f} s   ratio: {ratio:.3f} ({1 / ratio:.1f}x faster)"
    )
    print(f"identical per-column verdicts: {not mismatches}" + (f" {mismatches}" if mismatches else ""))
    print(f"wrote {args.out}")
    return 1 if mismatches or fast.share_of_drifted_columns != ev_share else 0


if __name__ == "__main__":
    sys.exit(main())
