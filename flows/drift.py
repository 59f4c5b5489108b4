"""NHS 111 configuration drift: read the findings the SQL finds, notify each episode once.

Detection is SQL (warehouse/sql/models/marts/mart_nhs111_drift_findings.sql over
core.int_nhs111_search_days): one open finding per practice, with since-when, evidence,
likely cause and who fixes it. `slotsync status` and the dashboard's Data health page read the
same mart. After each nightly load `notify_new_episodes` sends one `slotsync.nhs111.drift`
event per finding whose episode that very observation opened, so an episode is told once, not
every night it lasts; the alert automation (flows/alerts.py) relays the message. The event
id is derived from (practice, episode start), so a re-run of that night does not tell it twice.
No Prefect import at module level: `slotsync status` imports this and must start instantly.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import duckdb

from flows.alert_messages import DriftFinding, drift_message

DRIFT_MART = "marts.mart_nhs111_drift_findings"
_EPISODE_NAMESPACE = uuid.UUID("0c7f3f8e-3a55-4b8e-9d0e-5b1a11105111")


@dataclass(frozen=True)
class OpenDrift:
    """One row of the drift mart: an open episode at a practice's latest nightly observation."""

    finding: DriftFinding
    latest_observed_at: datetime
    is_new_episode: bool

    def as_json(self) -> dict[str, object]:
        f = self.finding
        return {
            "practice_ods": f.practice_ods, "kind": f.kind, "since": f.since.isoformat(),
            "latest_observed_at": self.latest_observed_at.isoformat(), "evidence": f.evidence,
            "likely_cause": f.likely_cause, "who_fixes": f.who_fixes,
        }


def open_drift(con: duckdb.DuckDBPyConnection) -> list[OpenDrift]:
    """Every open finding, or none when the warehouse has not built the mart yet."""
    exists = con.execute(
        "select count(*) from information_schema.tables "
        "where table_schema = 'marts' and table_name = 'mart_nhs111_drift_findings'"
    ).fetchone()
    if not exists or not exists[0]:
        return []
    rows = con.execute(
        f"select practice_ods, practice_name, kind, since, evidence, likely_cause, who_fixes, "
        f"latest_observed_at, is_new_episode from {DRIFT_MART} order by practice_ods"
    ).fetchall()
    return [
        OpenDrift(DriftFinding(ods, name, kind, since, evidence, cause, owner), latest, bool(new))
        for ods, name, kind, since, evidence, cause, owner, latest, new in rows
    ]


def episode_event_id(finding: DriftFinding) -> uuid.UUID:
    """The same id for every notification of one episode (practice, kind's start)."""
    return uuid.uuid5(_EPISODE_NAMESPACE, f"{finding.practice_ods}|{finding.since.isoformat()}")


def notify_new_episodes(con: duckdb.DuckDBPyConnection, observed_at: datetime) -> list[DriftFinding]:
    """Emit one drift event per episode the observation at `observed_at` opened."""
    from prefect.events import emit_event

    from flows.alerts import DRIFT_EVENT

    told: list[DriftFinding] = []
    for drift in open_drift(con):
        if not drift.is_new_episode or drift.latest_observed_at != observed_at:
            continue
        subject, body = drift_message(drift.finding)
        emit_event(
            DRIFT_EVENT, id=episode_event_id(drift.finding),
            resource={"prefect.resource.id": f"slotsync.practice.{drift.finding.practice_ods}",
                      "slotsync.drift.kind": drift.finding.kind},
            payload={"subject": subject, "body": body},
        )
        told.append(drift.finding)
    return told
