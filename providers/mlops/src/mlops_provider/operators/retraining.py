"""Throttle for retraining: a cooldown and a daily cap, so drift storms do not become retraining storms.

``RetrainingCooldownOperator`` is the first task of the training DAG. Scheduled runs (asset events from
new validated data or a drift verdict) proceed only when the last launched retraining of the model is
older than the cooldown and fewer than the daily cap were launched this UTC day; otherwise it skips,
and the skip propagates to every downstream task. Manual runs with ``as_of`` set always proceed (and
count as launches).

Launches are recorded in the Airflow Variable ``mlops_retraining_launches__<model>`` (a JSON list of
``{"at": <ISO timestamp>, "run": "<dag_id>/<run_id>"}``, the last day's worth; plain ISO strings from
older versions are still read), read and written through the Task SDK so it works on any executor. The
training DAG has ``max_active_runs=1``, so runs do not race on it.

Retries: a launch is keyed by its DAG run, so a retry of the task (or a re-run after a killed worker)
finds its own run's launch already recorded and proceeds without recording a second one; it is never
mistaken for an earlier launch inside the cooldown.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowSkipException

from mlops_provider.audit import RETRAINING_DECISION, record_audit
from mlops_provider.utils.faults import fault_point

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)

VARIABLE_PREFIX = "mlops_retraining_launches__"


def _as_utc(value: Any) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def run_key(dag_id: str, run_id: str) -> str:
    """Return the key a launch is recorded under: one per DAG run, the same on every try."""
    return f"{dag_id}/{run_id}"


def parse_launches(raw: Any) -> list[tuple[dt.datetime, str | None]]:
    """Parse the Variable's JSON list into ``(time, run key)`` pairs; bare timestamps have no run key."""
    import json

    entries = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(entries, list):
        raise ValueError(f"expected a JSON list, got {type(entries).__name__}")
    out: list[tuple[dt.datetime, str | None]] = []
    for entry in entries:
        if isinstance(entry, dict):
            out.append((_as_utc(entry["at"]), entry.get("run")))
        else:
            out.append((_as_utc(entry), None))
    return out


def decide(
    *, now: dt.datetime, launches: list[dt.datetime], cooldown: dt.timedelta, daily_cap: int, forced: bool
) -> tuple[bool, str]:
    """Return ``(proceed, reason)`` for a retraining requested at ``now`` given earlier ``launches``."""
    if forced:
        return True, "manual run with as_of: always proceeds"
    earlier = sorted(t for t in launches if t <= now)
    if earlier and now - earlier[-1] < cooldown:
        wait = cooldown - (now - earlier[-1])
        return False, (
            f"inside the cooldown: last retraining launched at {earlier[-1].isoformat()}, "
            f"cooldown {cooldown}, next allowed in {wait}"
        )
    today = [t for t in earlier if t.date() == now.date()]
    if daily_cap >= 0 and len(today) >= daily_cap:
        return False, f"daily cap reached: {len(today)} retraining run(s) launched on {now.date()} (cap {daily_cap})"
    return True, "outside the cooldown and under the daily cap"


class RetrainingCooldownOperator(BaseOperator):
    """Skip the rest of a retraining run when it comes too soon after the last one, or over the daily cap.

    Returns ``{"model_name", "decision": "proceed"|"skip", "reason", "triggered_by", "last_launch",
    "launches_today", "cooldown_minutes", "daily_cap"}`` (pushed to XCom before skipping, too).

    :param model_name: the model being retrained (templated).
    :param cooldown_minutes: minimum minutes between launches; default ``[mlops] retraining_cooldown_minutes``.
    :param daily_cap: most launches per UTC day; default ``[mlops] retraining_daily_cap``.
    """

    template_fields: Sequence[str] = ("model_name",)
    ui_color = "#fff3e0"

    def __init__(
        self,
        *,
        model_name: str,
        cooldown_minutes: int | None = None,
        daily_cap: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.cooldown_minutes = cooldown_minutes
        self.daily_cap = daily_cap

    def execute(self, context: Context) -> dict[str, Any]:
        """Decide, record the launch when proceeding, and skip downstream when not."""
        import json

        from airflow.sdk import Variable

        from mlops_provider.settings import get_settings

        settings = get_settings()
        cooldown_minutes = (
            self.cooldown_minutes if self.cooldown_minutes is not None else settings.retraining_cooldown_minutes
        )
        daily_cap = self.daily_cap if self.daily_cap is not None else settings.retraining_daily_cap
        dag_run = context["dag_run"]
        params = context.get("params") or {}
        run_type = getattr(dag_run, "run_type", None)
        run_type = str(getattr(run_type, "value", run_type) or "")
        forced = run_type == "manual" and bool(params.get("as_of"))
        now = _as_utc(getattr(dag_run, "run_after", None) or dt.datetime.now(dt.UTC))

        key = f"{VARIABLE_PREFIX}{self.model_name}"
        this_run = run_key(getattr(dag_run, "dag_id", "") or context["ti"].dag_id, dag_run.run_id)
        raw = Variable.get(key, default="[]")
        try:
            entries = parse_launches(raw)
        except (ValueError, TypeError, KeyError):
            log.warning("Variable %s held %r, not a JSON list of launches; starting afresh.", key, raw)
            entries = []
        own = [at for at, run in entries if run == this_run]
        launches = [at for at, run in entries if run != this_run]
        if own:
            # A retry (or a re-run after a kill) of a run that already proceeded: same decision, no new launch.
            proceed, reason = True, f"retry of {this_run}: its launch is already recorded at {own[0].isoformat()}"
        else:
            proceed, reason = decide(
                now=now,
                launches=launches,
                cooldown=dt.timedelta(minutes=cooldown_minutes),
                daily_cap=daily_cap,
                forced=forced,
            )
        events = context.get("triggering_asset_events") or {}
        triggered_by = sorted(getattr(asset, "name", None) or str(asset) for asset in events) or [run_type or "unknown"]
        today = [t for t in launches if t.date() == now.date() and t <= now]
        result = {
            "model_name": self.model_name,
            "decision": "proceed" if proceed else "skip",
            "reason": reason,
            "triggered_by": triggered_by,
            "last_launch": max(launches).isoformat() if launches else None,
            "launches_today": len(today) + (1 if proceed else 0),
            "cooldown_minutes": cooldown_minutes,
            "daily_cap": daily_cap,
        }
        if not own:  # a retry's entry was written before its launch was recorded: keep the first try's reason
            record_audit(RETRAINING_DECISION, self.model_name, outcome="proceed" if proceed else "skip", reason=reason,
                         context=context, details=result)  # fmt: skip
        if not proceed:
            context["ti"].xcom_push(key="return_value", value=result)
            log.info("Retraining of %s skipped: %s (triggered by %s).", self.model_name, reason, triggered_by)
            raise AirflowSkipException(f"Retraining of {self.model_name} skipped: {reason}.")
        if not own:
            keep_after = now - dt.timedelta(days=1, minutes=cooldown_minutes)
            kept = [(at, run) for at, run in entries if at >= keep_after] + [(now, this_run)]
            kept.sort(key=lambda entry: entry[0])
            Variable.set(key, json.dumps([{"at": at.isoformat(), "run": run} for at, run in kept]))
            fault_point("cooldown.after_launch_recorded")
        log.info("Retraining of %s proceeds: %s (triggered by %s).", self.model_name, reason, triggered_by)
        return result
