"""Benchmark: the fast drift engine against Evidently's DataDriftPreset on the same data.

Both run in this process on the same frames (default 1M rows x 20 numeric columns, half of the
columns shifted), timed with ``time.perf_counter``; the per-column verdicts must be identical (the
script exits 1 otherwise). Writes ``build/bench/drift.json`` as a list of
``{"metric", "value", "unit", "baseline", "ratio"}`` rows.

    python benchmarks/drift.py [--rows 1000000] [--columns 20] [--out build/bench/drift.json]

At scale (``--scale``, e.g. ``--rows 3000000 --columns 1000 --scale``) the frames do not fit in memory: they are
generated into Parquet files under ``--work`` (default /tmp, removed afterwards; ``--dtype`` float32 by default,
24 GB for both sides at that size, float64 doubles it) a row group at a time, the engine reads them
``--columns-per-chunk`` columns at a time (``compute_drift_parquet``), and Evidently runs on a sample of
``--evidently-columns`` columns read from the same files: the same-run baseline for the verdicts of those columns
and for the time per column. Prints the engine's time and peak RSS against the targets (5 min, 4 GiB) and the load.
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


def write_parquet_side(path: Path, side: str, rows: int, columns: int, dtype: str, seed: int = 7) -> None:
    """One side of the at-scale data, written a row group at a time (never the whole frame in memory).

    Column ``i`` is normal with standard deviation ``1 + (i % 20) / 10``; in ``current`` every odd column is shifted
    by ``0.04 * (i % 20 + 1)``, so normed Wasserstein scores spread from about 0.07 to 0.4 around the 0.1 threshold.
    Random normals do not compress, so the files are written without compression or dictionary encoding: that keeps
    the generation (3M x 1,000 x 2 values) to about a minute; snappy-compressed files hold the same bytes.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = [f"f{i:04d}" for i in range(columns)]
    schema = pa.schema([(name, pa.from_numpy_dtype(np.dtype(dtype))) for name in names])
    rng = np.random.default_rng(seed if side == "reference" else seed + 1)
    k = np.arange(columns) % 20
    scale = (1.0 + k / 10).astype(dtype)[:, None]
    shift = (np.where((side == "current") & (np.arange(columns) % 2 == 1), 0.04 * (k + 1), 0.0)).astype(dtype)[:, None]
    row_group = max(1, min(rows, 2**30 // (columns * np.dtype(dtype).itemsize)))  # about 1 GiB per row group
    with pq.ParquetWriter(path, schema, compression="none", use_dictionary=False) as writer:
        for lo in range(0, rows, row_group):
            block = rng.standard_normal((columns, min(row_group, rows - lo)), dtype=dtype)
            block *= scale
            block += shift
            writer.write_table(pa.Table.from_arrays([pa.array(values) for values in block], schema=schema))


def write_parquet_frames(work: Path, rows: int, columns: int, dtype: str) -> None:
    """``work/{reference,current}.parquet``, the two sides generated at once in two child processes.

    Child processes keep the generation's memory out of this process's peak RSS, which measures the engine.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [
            pool.submit(write_parquet_side, work / f"{side}.parquet", side, rows, columns, dtype)
            for side in ("reference", "current")
        ]
        for future in futures:
            future.result()


def main_scale(args: argparse.Namespace) -> int:
    """The at-scale run: chunked engine over Parquet, Evidently on a column sample."""
    import resource
    import shutil
    import tempfile

    import pyarrow.dataset as pads

    from mlops_provider.drift.engine import compute_drift_parquet

    def load() -> str:
        return "{:.1f} {:.1f} {:.1f}".format(*os.getloadavg())

    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")  # the engine's progress, per chunk
    Path(args.work).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="drift-bench-", dir=args.work))
    try:
        started = time.perf_counter()
        write_parquet_frames(work, args.rows, args.columns, args.dtype)
        size_gib = sum(f.stat().st_size for f in work.iterdir()) / 2**30
        print(
            f"generated {args.rows:,} rows x {args.columns} {args.dtype} columns per side ({size_gib:.1f} GiB) "
            f"in {time.perf_counter() - started:.0f} s; load average {load()} on {os.cpu_count()} cores"
        )
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        started = time.perf_counter()
        fast = compute_drift_parquet(
            str(work / "reference.parquet"), str(work / "current.parquet"), columns_per_chunk=args.columns_per_chunk
        )
        fast_s = time.perf_counter() - started
        peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        load_after_engine = load()
        names = [c.column for c in fast.columns]
        # Evenly spread over the columns, so the sample mixes shifted (odd) and unshifted (even) columns.
        sample = [names[int(i)] for i in np.unique(np.linspace(0, len(names) - 1, args.evidently_columns).round())]
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
    sampled_drifted = sum(by_column[c].drift_detected for c in sample)
    per_column_fast, per_column_ev = fast_s / fast.number_of_columns, evidently_s / len(sample)
    size = f"{args.rows} rows x {args.columns} {args.dtype} columns"
    records = [
        record(f"drift engine, chunked over Parquet ({size})", fast_s, "s (target <= 300)"),
        record("drift engine peak RSS", peak_gib, "GiB (target <= 4)"),
        record("drift engine seconds per column", per_column_fast, "s", round(per_column_ev, 4)),
        record(f"Evidently seconds per column ({len(sample)} sampled columns)", per_column_ev, "s"),
        record("sampled columns with verdicts different from Evidently", len(mismatches), "columns"),
    ]
    emit("drift_scale", records)
    print(f"load average: after the engine {load_after_engine}, at the end {load()} (1, 5, 15 min) on "
          f"{os.cpu_count()} cores; peak RSS before the engine {rss_before:.2f} GiB")  # fmt: skip
    # The targets are the issue's: 3M rows x 1,000 columns in <= 300 s; a smaller run projects its time per column.
    at_target_size = args.rows >= 3_000_000 and args.columns >= 1_000
    timing = (
        f"time {fast_s:.0f} s: {'met' if fast_s <= 300 else 'missed'} (<= 300 s)"
        if at_target_size
        else f"time {fast_s:.0f} s (the 300 s target is for 3M x 1,000; not judged at this size)"
    )
    print(f"{timing}; peak RSS {peak_gib:.2f} GiB: {'met' if peak_gib <= 4 else 'missed'} (<= 4 GiB); drifted "
          f"{fast.number_of_drifted_columns}/{fast.number_of_columns}; Evidently {per_column_ev:.1f} s/column vs engine "
          f"{per_column_fast:.3f} s/column (ratio {per_column_fast / per_column_ev:.4f}, "
          f"{per_column_ev / per_column_fast:.0f}x faster); identical verdicts on {len(sample)} sampled columns "
          f"({sampled_drifted} drifted): {not mismatches}" + (f" {mismatches}" if mismatches else ""))  # fmt: skip
    return 1 if mismatches else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--columns", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench" / "drift.json")
    parser.add_argument("--scale", action="store_true", help="Parquet-backed, column-chunked run (see the docstring)")
    parser.add_argument("--columns-per-chunk", type=int, default=16)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32", help="column type at scale")
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
