"""A person approves (or rejects) the gate's candidate before the rollout: Airflow 3's human-in-the-loop step.

:class:`ModelApprovalOperator` sits between :class:`~mlops_provider.operators.mlflow.MlflowEvaluationGateOperator`
and :class:`~mlops_provider.operators.kserve.ModelDeployOperator`. It is the standard provider's
``ApprovalOperator`` (options ``Approve``/``Reject``; the task waits in ``awaiting_input`` and a response comes
from the Airflow UI's required-actions page or ``PATCH .../taskInstances/<task>/<map index>/hitlDetails``) with a
form that shows the gate's evidence: candidate vs champion metrics, segments, the checks, the drift that triggered
retraining, and links to MLflow and the reports.

State lives in the data store, not in XCom:

- a rollout record (:mod:`mlops_provider.serving.records`, kind ``approval``) of the candidate's rollout: ``pending``
  with the form's URL when asked, then ``approved``/``rejected``/``timed_out`` with who answered;
- an audit entry (:mod:`mlops_provider.audit`, kind ``approval``) of the decision.

A retry of a decided approval does not ask again: the recorded decision stands (approved: the rollout proceeds;
rejected or timed out: downstream is skipped again). Reject and timeout (the timeout answers ``Reject``) leave
``champion`` untouched: ``challenger`` is dropped from the candidate, its rollout tags say ``rejected``, the
promotion lock the gate took for this run is released, and an alert goes out through ``[mlops] alert_notifier``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import ApprovalOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops_provider.hooks.mlflow import MlflowHook
    from mlops_provider.serving.records import RolloutRecorder

#: The rollout record's approval event key: one approval per rollout, rewritten as it moves on.
APPROVAL_KEY = "decision"
PENDING, APPROVED, REJECTED, TIMED_OUT = "pending", "approved", "rejected", "timed_out"
#: How far back the form looks for the drift that triggered retraining.
DRIFT_LOOKBACK = timedelta(days=14)


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) and not isinstance(value, bool) else "n/a"


def _delta(candidate: Any, champion: Any) -> str:
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (candidate, champion)):
        return ""
    return f"{candidate - champion:+.4f}"


def _cell(text: Any) -> str:
    """A value safe inside a markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def approval_body(
    decision: dict[str, Any], *, links: dict[str, str | None], drift: dict[str, Any] | None = None
) -> str:
    """The approval form's markdown: the gate's evidence, the drift that triggered retraining, and the links.

    :param decision: the evaluation gate's :class:`~mlops_provider.payloads.GateDecision`.
    :param links: name -> URL (MLflow version and run, the gate task, drift report); empty values are left out.
    :param drift: the latest ``retraining_trigger`` audit entry of the model (None: no drift triggered this run).
    """
    candidate, champion = decision.get("candidate_version"), decision.get("champion_version")
    cand_metrics = decision.get("candidate_metrics") or {}
    champ_metrics = decision.get("champion_metrics") or {}
    lines = [
        f"**{_cell(decision.get('model_name'))}**: candidate **v{_cell(candidate)}** vs champion "
        f"**{'v' + _cell(champion) if champion else 'none'}**. The evaluation gate said "
        f"**{_cell(decision.get('decision'))}**; approving starts the rollout, rejecting leaves `champion` as it is.",
        "",
        "| Metric | Candidate | Champion | Δ |",
        "| --- | ---: | ---: | ---: |",
    ]
    for metric in sorted(set(cand_metrics) | set(champ_metrics)):
        cand, champ = cand_metrics.get(metric), champ_metrics.get(metric)
        lines.append(f"| {_cell(metric)} | {_number(cand)} | {_number(champ)} | {_delta(cand, champ)} |")
    window = decision.get("evaluation_window") or {}
    if window:
        lines += [
            "",
            f"Evaluation window: {_cell(window.get('rows'))} rows, {_cell(window.get('start'))} … "
            f"{_cell(window.get('end'))} (training set `{_cell(window.get('training_set_hash') or 'n/a')}`).",
        ]
    segments = decision.get("candidate_segments") or {}
    if segments:
        champ_segments = decision.get("champion_segments") or {}
        lines += ["", "| Segment | Metric | Candidate | Champion | Δ |", "| --- | --- | ---: | ---: | ---: |"]
        for segment in sorted(segments, key=str):
            for metric, value in sorted((segments[segment] or {}).items()):
                if metric == "rows":
                    continue
                champ = (champ_segments.get(segment) or {}).get(metric)
                lines.append(
                    f"| {_cell(segment)} | {_cell(metric)} | {_number(value)} | {_number(champ)} | "
                    f"{_delta(value, champ)} |"
                )
    checks = decision.get("checks") or []
    messages = {c.get("message") for c in checks}
    notes = [r for r in decision.get("reasons") or [] if r not in messages]
    if checks or notes:
        lines += ["", "Gate checks:"]
        lines += [f"- {'✅' if c.get('passed') else '❌'} {_cell(c.get('message'))}" for c in checks]
        lines += [f"- ℹ️ {_cell(note)}" for note in notes]
    if drift:
        details = drift.get("details") or {}
        share = details.get("drift_share")
        lines += [
            "",
            f"Retraining was triggered by drift at {_cell(str(drift.get('at', ''))[:19])} UTC: "
            f"{_cell(drift.get('reason'))}"
            + (f" (drift share {_number(share)})" if share is not None else "")
            + (
                f"; drifted features: {_cell(', '.join(map(str, details['drifted_features'])))}"
                if details.get("drifted_features")
                else ""
            )  # fmt: skip
            + ".",
        ]
        links = {**{f"drift_{k}": v for k, v in (drift.get("links") or {}).items()}, **links}
    shown = [f"[{name.replace('_', ' ')}]({url})" for name, url in links.items() if url]
    if shown:
        lines += ["", "Evidence: " + " · ".join(shown)]
    return "\n".join(lines)


class ModelApprovalOperator(ApprovalOperator):
    """Wait for a person to approve the gate's candidate before it is rolled out.

    :param model_name: registered model name. (templated)
    :param decision: the evaluation gate's XCom (:class:`~mlops_provider.payloads.GateDecision`), usually
        ``gate.output``. (templated)
    :param response_timeout: how long to wait; past it the approval counts as rejected (``timed_out``).
    :param mlflow_conn_id: MLflow connection; default ``[mlops] mlflow_conn_id``. (templated)
    :param data_root: where the rollout records and audit entries go; default ``[mlops] data_root``.
    :param notifier: ``log`` or ``webhook`` for the reject/timeout alert; default ``[mlops] alert_notifier``.

    Other arguments go to :class:`~airflow.providers.standard.operators.hitl.HITLOperator` (``assigned_users``,
    ``notifiers`` for the request itself, ...).
    """

    template_fields: Sequence[str] = (*ApprovalOperator.template_fields, "model_name", "decision", "mlflow_conn_id")
    template_fields_renderers = {"decision": "json", "body": "md"}
    ui_color = "#c6dbef"

    def __init__(
        self,
        *,
        model_name: str,
        decision: dict[str, Any] | str,
        response_timeout: timedelta = timedelta(hours=24),
        mlflow_conn_id: str | None = None,
        data_root: str | None = None,
        notifier: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("subject", f"Approve the rollout of {model_name}?")
        super().__init__(
            response_timeout=response_timeout,
            # No answer in time is a rejection, resolved by the scheduler's awaiting-input timeout sweep.
            defaults=[ApprovalOperator.REJECT],
            ignore_downstream_trigger_rules=True,
            **kwargs,
        )
        self.model_name = model_name
        self.decision = decision
        self.mlflow_conn_id = mlflow_conn_id
        self.data_root = data_root
        self.notifier = notifier

    @cached_property
    def hook(self) -> MlflowHook:
        """MLflow hook of ``mlflow_conn_id``."""
        from mlops_provider.hooks.mlflow import MlflowHook

        return MlflowHook(self.mlflow_conn_id)

    def _decision(self) -> dict[str, Any]:
        from mlops_provider.payloads import parse_payload

        decision = parse_payload(self.decision, name="decision", required=False)
        if decision.get("decision") != "promote" or not decision.get("candidate_version"):
            from airflow.sdk.exceptions import AirflowSkipException

            raise AirflowSkipException(
                f"Nothing to approve: the evaluation gate's decision is {decision.get('decision')!r} for version "
                f"{decision.get('candidate_version')!r}."
            )
        if not decision.get("decided_at"):
            raise ValueError(
                "decision lacks decided_at (the evaluation gate's XCom has it); pass the gate's output as decision."
            )
        return decision

    def _recorder(self, decision: dict[str, Any]) -> RolloutRecorder:
        """The candidate's rollout record, keyed by the gate's decision (the same on every try)."""
        from mlops_provider.serving.records import RolloutRecorder

        return RolloutRecorder(
            self.model_name, decision["candidate_version"], decision["decided_at"], data_root=self.data_root
        )

    def _recorded(self, recorder: RolloutRecorder) -> dict[str, Any] | None:
        """The approval event already recorded for this rollout (None: not asked yet)."""
        import json

        from mlops_provider.serving.records import APPROVAL
        from mlops_provider.storage import storage_path

        path = storage_path(f"{recorder.folder}/{APPROVAL}-{APPROVAL_KEY}.json")
        return json.loads(path.read_bytes()) if path.exists() else None

    def _links(self, context: Context, decision: dict[str, Any]) -> dict[str, str | None]:
        from urllib.parse import quote

        from mlops_provider.audit import mlflow_links
        from mlops_provider.links.evidently import api_base_url

        links: dict[str, str | None] = {}
        try:
            run = self.hook.get_run(decision["run_id"]) if decision.get("run_id") else None
            links.update(mlflow_links(self.hook, self.model_name, decision["candidate_version"], run))
        except Exception as exc:  # the form still shows the evidence it has
            self.log.warning(
                "MLflow links of %s v%s unavailable: %s", self.model_name, decision["candidate_version"], exc
            )
        ti = context["ti"]
        base = api_base_url()
        for task_id in sorted(self.upstream_task_ids)[:1]:
            links["gate_task"] = f"{base}/dags/{quote(ti.dag_id)}/runs/{quote(ti.run_id)}/tasks/{quote(task_id)}"
        links["mlops_page"] = f"{base}/mlops/?model={quote(self.model_name)}"
        return links

    def _drift(self) -> dict[str, Any] | None:
        from datetime import UTC, datetime

        from mlops_provider.audit import RETRAINING_TRIGGER, read_audit

        try:
            entries = read_audit(self.model_name, since=datetime.now(UTC) - DRIFT_LOOKBACK, data_root=self.data_root)
        except Exception as exc:  # an unreadable audit folder must not block the approval
            self.log.warning("Drift context of %s unavailable: %s", self.model_name, exc)
            return None
        return next((e for e in entries if e.get("kind") == RETRAINING_TRIGGER), None)

    def execute(self, context: Context) -> Any:
        """Record the request, show the gate's evidence in the form and wait; a recorded decision stands."""
        from mlops_provider.serving.records import APPROVAL

        decision = self._decision()
        recorder = self._recorder(decision)
        recorded = self._recorded(recorder)
        state = ((recorded or {}).get("details") or {}).get("state")
        if state in (APPROVED, REJECTED, TIMED_OUT):
            self.log.info("Approval of %s v%s already %s: not asking again.", self.model_name, recorder.version, state)
            details = recorded["details"]  # type: ignore[index]
            if state == APPROVED:
                return details
            self._skip_downstream(context)
            return details
        champion = decision.get("champion_version")
        self.subject = (
            f"Roll out {self.model_name} v{decision['candidate_version']} "
            f"(champion: {'v' + str(champion) if champion else 'none'})?"
        )
        self.body = approval_body(decision, links=self._links(context, decision), drift=self._drift())
        url = self._form_url(context)
        recorder.record(APPROVAL, APPROVAL_KEY, {"state": PENDING, "url": url, "by": None, "comment": None})
        self.log.info("Approval of %s v%s requested: %s", self.model_name, recorder.version, url)
        return super().execute(context)

    def _form_url(self, context: Context) -> str | None:
        from mlops_provider.links.evidently import api_base_url

        try:
            return self.generate_link_to_ui(task_instance=context["ti"], base_url=api_base_url() or None)
        except ValueError:  # no [api] base_url: the task instance page relative to the UI
            ti = context["ti"]
            return f"/dags/{ti.dag_id}/runs/{ti.run_id}/tasks/{ti.task_id}/required_actions"

    def _skip_downstream(self, context: Context) -> None:
        tasks = [t for t in context["task"].get_flat_relatives(upstream=False) if not t.is_teardown]
        if tasks:
            self.skip(ti=context["ti"], tasks=tasks)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Record the answer; on reject or timeout release the candidate, alert, and skip the rollout."""
        from mlops_provider.audit import APPROVAL as AUDIT_APPROVAL
        from mlops_provider.audit import mlflow_links, record_audit
        from mlops_provider.serving.records import APPROVAL, RESULT

        if "error" in event:
            return super().execute_complete(context=context, event=event)
        decision = self._decision()
        recorder = self._recorder(decision)
        chosen = (event.get("chosen_options") or [None])[0]
        user = event.get("responded_by_user") or {}
        by = user.get("name") or user.get("id")
        state = APPROVED if chosen == self.APPROVE else (TIMED_OUT if event.get("timedout") or not by else REJECTED)
        version = decision["candidate_version"]
        url = self._form_url(context)
        details = {"state": state, "url": url, "by": by, "comment": None}
        if state == APPROVED:
            reason = f"{by} approved the rollout of version {version}"
        elif state == REJECTED:
            reason = f"{by} rejected the rollout of version {version}; champion stays"
        else:
            reason = f"no answer within {self.response_timeout}: the rollout of version {version} is rejected"
        if state != APPROVED:
            self._release(context, decision, state, reason)
            # Alert before the decision is recorded: a retry that finds it recorded has nothing left to do.
            from mlops_provider.notifications import alert_notifier

            title = f"Rollout of {self.model_name} v{version} {state.replace('_', ' ')}: champion unchanged"
            alert_notifier(
                title=title,
                details={"model_name": self.model_name, "version": version, "state": state, "by": by, "form": url},
                kind=self.notifier,
            ).notify(context)
            recorder.record(RESULT, "outcome", {"outcome": "rejected", "message": reason})
        try:
            links = mlflow_links(self.hook, self.model_name, version)
        except Exception:  # the decision is recorded even when MLflow is unreachable
            links = {}
        record_audit(AUDIT_APPROVAL, self.model_name, outcome=state, reason=reason, context=context, subject=version,
                     details={**details, "champion_version": decision.get("champion_version"),
                              "responded_at": str(event.get("responded_at") or "")},
                     links={"approval_form": url, **links}, data_root=self.data_root)  # fmt: skip
        recorder.record(APPROVAL, APPROVAL_KEY, details)
        self.log.info("Approval of %s v%s: %s", self.model_name, version, state)
        return super().execute_complete(context=context, event=event)

    def _release(self, context: Context, decision: dict[str, Any], state: str, reason: str) -> None:
        """Drop ``challenger`` from the candidate, tag its rollout as rejected, release this run's promotion lock."""
        from mlops_provider.serving.promotion import Promotion

        ti = context["ti"]
        promotion = Promotion(self.hook, self.model_name, decision["candidate_version"], f"{ti.dag_id}/{ti.run_id}")
        promotion.failed(
            "rejected", "ApprovalRejected" if state == REJECTED else "ApprovalTimedOut", reason, final=True
        )
