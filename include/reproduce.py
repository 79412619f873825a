"""``python -m include.reproduce --model <name> --version <n>``: rebuild and retrain a model version, prove it.

Reads the version's run from MLflow (training-set manifest with the partition versions it read, the trainer's
parameters and seed, the trainer's code version), rebuilds the training set from exactly those partition versions,
retrains through the local trainer, and compares the original's and the reproduction's predictions on a fixed
sample. Prints the report as JSON; exits 0 when the predictions are identical (within ``--tolerance``), 1 when
they differ or the training set cannot be rebuilt identically, 2 when a recorded input is gone (a partition
version deleted by retention, a run without recorded parameters). ``make reproduce MODEL=<name> VERSION=<n>``
runs it. Logic: :mod:`mlops_provider.operators.reproduction` (also ``ModelReproductionOperator``).
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    from mlops_provider.exceptions import MlopsError, ReproductionMismatchError
    from mlops_provider.operators.reproduction import reproduce_model_version

    parser = argparse.ArgumentParser(prog="python -m include.reproduce", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="registered model name")
    parser.add_argument("--version", required=True, help="model version to reproduce")
    parser.add_argument("--tolerance", type=float, default=0.0, help="largest accepted prediction difference")
    parser.add_argument("--sample-rows", type=int, default=500, help="rows of the training set both models score")
    parser.add_argument(
        "--allow-code-change", action="store_true", help="retrain even if the trainer code differs from the recorded"
    )
    args = parser.parse_args(argv)
    try:
        report = reproduce_model_version(
            args.model,
            args.version,
            allow_code_change=args.allow_code_change,
            tolerance=args.tolerance,
            sample_rows=args.sample_rows,
        )
    except ReproductionMismatchError as err:
        print(f"NOT REPRODUCED: {err}", file=sys.stderr)
        return 1
    except MlopsError as err:
        print(f"CANNOT REPRODUCE: {err}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
