"""Alert texts and automation specs, without a server (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from jinja2 import Environment

from common.config import AlertSettings
from flows.alert_messages import (
    MAX_LISTED,
    DriftFinding,
    FailedPractice,
    deadline_message,
    drift_message,
    failed_run_message,
    failed_run_report,
    failed_run_template,
    quarantine_message,
)
from flows.alerts import alert_automations, deadline_window
from flows.operations import supplier_text

SPINE_MESSAGE = (
    "practice A81001, search free slots: HTTP 400 INVALID_RESOURCE: Slot search period exceeds 14 "
    "days. Next step: fix the practice's registry entry, then re-run"
)


def test_alert_report_names_practices_error_classes_supplier_text_and_rerun() -> None:
    failed = [
        FailedPractice("A81001", "ConfigurationError", "fix the registry entry",
                       supplier_text(SPINE_MESSAGE)),
        FailedPractice("A81002", "TransientError", "re-run later"),
        FailedPractice("A81003", "ConfigurationError", "fix the registry entry"),
    ]
    text = failed_run_report(failed=failed, total=10, threshold=0.2, rerun_id="run-1")
    lines = text.splitlines()
    assert lines[0] == "3 of 10 practices failed (more than 20%)."
    assert lines[1] == "Errors: ConfigurationError x2, TransientError x1"
    assert "- A81001: ConfigurationError [INVALID_RESOURCE: Slot search period exceeds 14 days]" in lines
    assert "Next step: fix the registry entry" in lines and lines[-1] == "Then: slotsync rerun run-1"
    assert max(len(line) for line in lines) < 120, "each line fits a phone screen or two"


def test_alert_report_counts_practices_beyond_the_listed_ones() -> None:
    failed = [FailedPractice(f"P{i:05}", "TransientError", None) for i in range(MAX_LISTED + 5)]
    text = failed_run_report(failed=failed, total=100, threshold=0.2, rerun_id="r")
    assert "- and 5 more (see `slotsync status`)" in text
    assert "P00009" not in text and "Next step" not in text


def test_alert_supplier_text_is_code_and_diagnostics_or_none() -> None:
    assert supplier_text(SPINE_MESSAGE) == "INVALID_RESOURCE: Slot search period exceeds 14 days"
    assert supplier_text("practice X, search free slots: no HTTP response: timed out. Next step: x") is None
    assert supplier_text(None) is None


def test_alert_failed_run_template_renders_like_the_message() -> None:
    subject_t, body_t = failed_run_template("http://prefect.example:4200/")
    run_id = str(uuid4())
    context = {"flow": {"name": "nightly_sync"},
               "flow_run": {"name": "calm-otter", "id": run_id,
                            "state": {"name": "Crashed", "message": "process exited -9"}}}
    env = Environment()
    rendered = (env.from_string(subject_t).render(context), env.from_string(body_t).render(context))
    expected = failed_run_message(flow_name="nightly_sync", run_name="calm-otter", state_name="Crashed",
                                  run_id=run_id, state_message="process exited -9",
                                  run_url=f"http://prefect.example:4200/runs/flow-run/{run_id}")
    assert rendered[0] == expected[0]
    assert [line for line in rendered[1].splitlines() if line] == expected[1].splitlines()
    assert f"slotsync rerun {run_id}" in rendered[1] and "process died" in rendered[1]


def test_alert_quarantine_and_deadline_messages_say_who_and_what_next() -> None:
    subject, body = quarantine_message(practice_ods="A81001", load_id="L1",
                                       failed_expectations=["slot_ends_after_start"],
                                       detail="slot_ends_after_start: 3 row(s), a slot ends before it starts",
                                       run_url=None)
    assert "A81001" in subject and "Who fixes it" in body and "slotsync validate" in body
    subject, body = deadline_message(deadline="07:00", ui_url="http://h:4200")
    assert "07:00" in subject and "slotsync status" in body and "http://h:4200/runs" in body


def test_drift_message_carries_since_evidence_cause_and_owner() -> None:
    finding = DriftFinding("A81001", "The Surgery", "NO_RESERVED_111_SLOTS",
                           datetime(2026, 3, 25, 2, tzinfo=UTC), "0 reserved for 111", "set-up off",
                           "practice")
    subject, body = drift_message(finding)
    assert subject == "slotsync: NHS 111 booking at risk at A81001"
    assert "Since: Wed 25 Mar 2026 02:00 UTC" in body and "Evidence: 0 reserved for 111" in body
    assert "Likely cause: set-up off." in body and "Who fixes it: practice." in body


def test_alert_automations_cover_every_alert_and_every_destination() -> None:
    blocks = [uuid4(), uuid4()]
    automations = alert_automations(AlertSettings(), blocks, "http://h:4200")
    assert [a.name for a in automations] == [
        "slotsync: sync run failed", "slotsync: nightly not completed by deadline",
        "slotsync: batch quarantined", "slotsync: NHS 111 configuration drift",
    ]
    for automation in automations:
        assert [a.block_document_id for a in automation.actions] == blocks
    deadline = automations[1].trigger
    assert deadline.posture == "Proactive" and deadline.within == timedelta(hours=5)
    assert deadline_window(AlertSettings(nightly_deadline="01:30")) == timedelta(hours=23, minutes=30)
    assert deadline_window(AlertSettings(nightly_deadline_after_s=30)) == timedelta(seconds=30)
