"""Shared output of the benchmarks: a printed table and build/bench/<name>.json records."""

from __future__ import annotations

import json
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parents[1] / "build" / "bench"


def record(metric: str, value: float, unit: str, baseline: float | None = None) -> dict:
    """One measurement; ``ratio`` is value / baseline when a baseline was measured in the same run."""
    ratio = round(value / baseline, 3) if baseline not in (None, 0) else None
    return {"metric": metric, "value": round(value, 6), "unit": unit, "baseline": baseline, "ratio": ratio}


def emit(name: str, records: list[dict]) -> Path:
    """Print ``records`` as a table and write them to build/bench/<name>.json."""
    width = max(len(r["metric"]) for r in records)
    print(f"{'metric':<{width}}  {'value':>12}  {'unit':<8}  {'baseline':>12}  {'ratio':>7}")
    for r in records:
        baseline = "" if r["baseline"] is None else f"{r['baseline']:.4g}"
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.3g}"
        print(f"{r['metric']:<{width}}  {r['value']:>12.4g}  {r['unit']:<8}  {baseline:>12}  {ratio:>7}")
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    path = BENCH_DIR / f"{name}.json"
    path.write_text(json.dumps(records, indent=2))
    return path
