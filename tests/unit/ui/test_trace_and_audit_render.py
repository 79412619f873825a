"""The page's trace walk and audit timeline render what is recorded, say what is not, and escape everything."""

from __future__ import annotations

from mlops_provider.ui.app import render_audit, render_trace

XSS = "<img src=x onerror=alert(1)>"


def lineage(partition_versions):
    return {
        "request": {"request_id": XSS, "model_name": "m", "served_at": "2031-03-01 10:00:00+00:00", "rows": 1,
                    "latency_ms": 2.0, "predictions": [0.4], "features": {"f": XSS}},
        "model_version": {"version": "3", "aliases": ["champion"], "run_id": "r1", "source": "s", "url": None},
        "run": {"params": {}, "code_version": "abc", "idempotency_key": "k", "airflow": {}, "url": None},
        "training_set": {"uri": "file:///ts", "hash": "h1", "rows": 10, "dataset": "d", "feature_service": "fs",
                         "window": ["2031-02-01", "2031-02-01"], "partition_versions": partition_versions},
        "validation_reports": [{"day": "2031-02-01", "uri": "s3://bucket/reports/validation/d/dt=2031-02-01/report.json",
                                "published": True, "input_rows": 5, "valid_rows": 5}],
    }  # fmt: skip


def test_partition_versions_render_when_recorded_and_say_so_when_not():
    html = render_trace(XSS, lineage(None), None, "")
    assert "not recorded in the training-set manifest" in html
    assert XSS not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "https://s3.console.aws.amazon.com/s3/object/bucket?prefix=reports/validation/d/dt%3D2031-02-01" in html
    recorded = [
        {"partition": "validated/d/dt=2031-02-01", "version": "v7", "uri": "u", "exists": True, "current": False}
    ]
    html = render_trace("r", lineage(recorded), None, "/base")
    assert "<code>validated/d/dt=2031-02-01</code> = <code>v7</code>" in html and "superseded" in html
    assert "not recorded" not in html and "not reproducible" not in html
    assert "<img" not in render_trace(XSS, None, f"no log {XSS}", "")


def test_audit_entries_drop_unsafe_links():
    entry = {"kind": "rollback", "outcome": "rolled_back", "at": "2031-03-01T10:00:00+00:00", "subject": "3",
             "reason": XSS, "actor": {"name": "d/r/t"}, "links": {"bad": "javascript:alert(1)", "ok": "/dags/d"}}  # fmt: skip
    html = render_audit("m", [entry], "")
    assert "javascript:" not in html and 'href="/dags/d"' in html and XSS not in html
    assert 'href="/mlops/audit/m.jsonl"' in html
