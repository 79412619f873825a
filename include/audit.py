"""``python -m include.audit export [--model M] [--since D]``: the audit log as JSON lines on stdout.

One line per decision (gate decision, approval, promotion, rollback, retraining trigger, retraining decision),
oldest first, as :mod:`mlops_provider.audit` stores them under ``<data_root>/audit/``. ``--since`` takes a
date (``2031-03-01``) or an ISO timestamp (UTC when it has no offset). The MLOps page offers the same export per
model (``/mlops/audit/<model>.jsonl``).
"""

from __future__ import annotations

import argparse
import sys


def _iso(value: str) -> str:
    from datetime import datetime

    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO date or timestamp (e.g. 2031-03-01)") from None
    return value


def main(argv: list[str] | None = None) -> int:
    from mlops_provider.audit import export_jsonl

    parser = argparse.ArgumentParser(prog="python -m include.audit", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="print the audit log as JSON lines, oldest first")
    export.add_argument("--model", default=None, help="one model's entries only")
    export.add_argument(
        "--since", default=None, type=_iso, help="entries decided at or after this date or ISO timestamp"
    )
    args = parser.parse_args(argv)
    for line in export_jsonl(args.model, since=args.since):
        sys.stdout.write(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
