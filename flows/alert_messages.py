"""The text of every operator alert, built by pure functions (no Prefect, no I/O).

Alerts are read on a phone at 02:00, so every message says, in this order and in short lines:
what happened, to which practices, the error classes, the next step (and who takes it), the
exact `slotsync rerun ...` command where one helps, and a link to the run. Prefect's
automations deliver them (flows/alerts.py): a run that ends Failed or Crashed carries its
report in its state message (`failed_run_report`), which the automation's body template
(`failed_run_template`) places between the headline and the rerun command; quarantine and
NHS 111 drift messages travel whole in an event's payload; the deadline message is a template.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

MAX_LISTED = 8  # practices named in one message; the rest are counted

@dataclass(frozen=True)
class FailedPractice:
    """One practice's failure, as a run report lists it."""

    practice_ods: str
    error_class: str | None
    next_step: str | None
    supplier_text: str | None = None  # the supplier's own diagnostics / Spine error code


@dataclass(frozen=True)
class DriftFinding:
    """One practice's open NHS 111 configuration drift episode."""

    practice_ods: str
    practice_name: str
    kind: str  # NO_RESERVED_111_SLOTS | BELOW_111_QUOTA | RESERVED_SLOTS_CHANGED
    since: datetime  # the first nightly observation of the episode
    evidence: str  # which searches returned what
    likely_cause: str
    who_fixes: str


def failed_run_report(
    *, failed: Sequence[FailedPractice], total: int, threshold: float, rerun_id: str
) -> str:
    """The state message of a sync that ends Failed: counts, practices, error classes, next step."""
    lines = [f"{len(failed)} of {total} practices failed (more than {threshold:.0%})."]
    classes = Counter(f.error_class or "unclassified" for f in failed)
    lines.append("Errors: " + ", ".join(f"{name} x{count}" for name, count in classes.most_common()))
    for f in failed[:MAX_LISTED]:
        supplier = f" [{f.supplier_text}]" if f.supplier_text else ""
        lines.append(f"- {f.practice_ods}: {f.error_class or 'unclassified'}{supplier}")
    if len(failed) > MAX_LISTED:
        lines.append(f"- and {len(failed) - MAX_LISTED} more (see `slotsync status`)")
    steps = Counter(f.next_step for f in failed if f.next_step)
    if steps:
        lines.append(f"Next step: {steps.most_common(1)[0][0]}")
    lines.append(f"Then: slotsync rerun {rerun_id}")
    return "\n".join(lines)


CRASH_NOTE = ("The run's process died (machine, memory or kill). Completed practices are kept in "
              "the warehouse.")


def failed_run_message(
    *, flow_name: str, run_name: str, state_name: str, run_id: str, state_message: str, run_url: str,
    crash_note: str | None = None,
) -> tuple[str, str]:
    """(subject, body) for a sync run that ended Failed or Crashed."""
    subject = f"slotsync: {flow_name} {state_name} ({run_name})"
    report = state_message.strip() or "No report: the run stopped before it could write one."
    if crash_note is None:
        crash_note = CRASH_NOTE if state_name == "Crashed" else ""
    body = "\n".join(line for line in [
        f"{flow_name} run {run_name} ended {state_name}.",
        report,
        crash_note,
        f"Re-run only what is missing: slotsync rerun {run_id}",
        f"Run: {run_url}",
    ] if line)
    return subject, body


def failed_run_template(ui_url: str) -> tuple[str, str]:
    """The automation's Jinja (subject, body) for `failed_run_message`, filled in on the server."""
    return failed_run_message(
        flow_name="{{ flow.name }}", run_name="{{ flow_run.name }}",
        state_name="{{ flow_run.state.name }}", run_id="{{ flow_run.id }}",
        state_message="{{ flow_run.state.message }}",
        run_url=f"{ui_url.rstrip('/')}/runs/flow-run/{{{{ flow_run.id }}}}",
        # Jinja's own test, so the note appears only for a crash; a blank line otherwise.
        crash_note=f"{{% if flow_run.state.name == 'Crashed' %}}{CRASH_NOTE}{{% endif %}}",
    )


def deadline_message(*, deadline: str, ui_url: str) -> tuple[str, str]:
    """(subject, body) when the nightly has not Completed by its deadline (no run data needed)."""
    subject = f"slotsync: the nightly sync has not completed by {deadline}"
    body = "\n".join([
        f"No nightly_sync run completed by {deadline} (UK time) after it was due.",
        "Dashboards still show yesterday's capacity; NHS 111 release decisions use older data.",
        "Next step (pipeline operator): is `slotsync serve` running and its worker online? "
        "Check `slotsync status` and the runs list.",
        "A failed run: slotsync rerun <its flow-run id>. None ran at all: "
        "prefect deployment run nightly_sync/nightly",
        f"Runs: {ui_url.rstrip('/')}/runs",
    ])
    return subject, body


def quarantine_message(
    *, practice_ods: str, load_id: str, failed_expectations: Sequence[str], detail: str, run_url: str | None
) -> tuple[str, str]:
    """(subject, body) for a batch held back by data-quality expectations."""
    subject = f"slotsync: {practice_ods} batch quarantined"
    lines = [
        f"Practice {practice_ods}: its capture in load {load_id} was held back, not published.",
        "Failed: " + ", ".join(failed_expectations),
        *(f"- {part}" for part in detail.split("; ") if part),
        "Who fixes it: the practice's clinical system supplier if its data broke the rules; "
        "the pipeline operator if a rule is wrong.",
        "Next step: `slotsync validate` lists it; after the fix the next sync publishes again.",
    ]
    if run_url:
        lines.append(f"Run: {run_url}")
    return subject, "\n".join(lines)


def drift_message(finding: DriftFinding, *, dashboard_hint: str = "Data health page") -> tuple[str, str]:
    """(subject, body) for a new NHS 111 configuration drift episode (sent once per episode)."""
    subject = f"slotsync: NHS 111 booking at risk at {finding.practice_ods}"
    body = "\n".join([
        f"{finding.practice_name} ({finding.practice_ods}): {finding.kind.replace('_', ' ').lower()}.",
        f"Since: {finding.since:%a %d %b %Y %H:%M} UTC (nightly search).",
        f"Evidence: {finding.evidence}",
        f"Likely cause: {finding.likely_cause}.",
        f"Who fixes it: {finding.who_fixes}.",
        "111 calls for this practice may fail to book until it is fixed; the practice can check "
        "with the GP Connect Appointment Checker.",
        f"You will not be told again while this lasts; see `slotsync status` or the {dashboard_hint}.",
    ])
    return subject, body
