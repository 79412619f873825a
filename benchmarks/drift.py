"""Benchmark: the fast drift engine against Evidently's DataDriftPreset on the same data.

Both run in this process on the same frames (default 1M rows x 20 numeric columns, half of the
columns shifted), timed with ``time.perf_counter``; the per-column verdicts must be identical (the
script exits 1 otherwise). Writes ``build/bench/drift.json`` as a list of
``{"metric", "value", "unit", "baseline", "ratio"}`` rows.

    python benchmarks/drift.py [--rows 1000000] [--columns 20] [--out build/bench/drift.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "providers" / "mlops" / "src"))


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--columns", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench" / "drift.json")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")

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
