"""The release audit table as typed SQLModel rows.

Small, row-oriented and written a few rows at a time, so an ORM model with a natural key
fits better than bulk SQL here. The table itself is created by a `.sql` migration; this model
only maps onto it (reflection and autogenerate do not work with duckdb_engine). The engine
borrows a cursor of the caller's DuckDB connection, so it joins the caller's process and
never opens the file a second time.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import duckdb
import duckdb_engine
from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import StaticPool
from sqlmodel import Field, Session, SQLModel, col, select

DONE_OUTCOMES = frozenset({"released", "already_released", "queued", "already_queued",
                           "refused_booked", "refused_started", "refused_not_restricted"})


class ReleaseDecision(SQLModel, table=True):
    """One decision about one NHS 111 slot in one run of the release flow."""

    __tablename__ = "release_decision"
    __table_args__ = {"schema": "audit"}

    decision_id: str = Field(primary_key=True)
    idempotency_key: str
    flow_run_id: str | None = None
    as_of: datetime
    practice_ods: str
    slot_id: str
    slot_start_at: datetime
    slot_start_text: str | None = None
    slot_type: str | None = None
    policy_name: str
    due_at: datetime
    releaser: str
    dry_run: bool
    outcome: str
    reason: str | None = None
    state_before: str | None = None
    state_after: str | None = None
    version_before: str | None = None
    version_after: str | None = None
    http_status: int | None = None
    decided_at: datetime
    completed_at: datetime | None = None


def audit_engine(con: duckdb.DuckDBPyConnection) -> Engine:
    """A SQLAlchemy engine over the caller's open DuckDB connection."""
    return create_engine(
        "duckdb:///:memory:",
        creator=lambda: duckdb_engine.ConnectionWrapper(con.cursor()),
        poolclass=StaticPool,
    )


def save(engine: Engine, decisions: Iterable[ReleaseDecision]) -> None:
    """Insert or update decisions by id, in one transaction."""
    with Session(engine) as session:
        for decision in decisions:
            session.merge(decision)
        session.commit()


def settled_keys(engine: Engine, keys: Iterable[str]) -> set[str]:
    """Idempotency keys that already reached a final outcome (never to be acted on again)."""
    wanted = list(set(keys))
    if not wanted:
        return set()
    with Session(engine) as session:
        rows = session.exec(
            select(ReleaseDecision.idempotency_key)
            .where(col(ReleaseDecision.idempotency_key).in_(wanted))
            .where(col(ReleaseDecision.outcome).in_(sorted(DONE_OUTCOMES)))
        ).all()
    return set(rows)


def attempting_keys(engine: Engine) -> set[str]:
    """Keys with an attempt that started (audit row written) but may never have completed."""
    with Session(engine) as session:
        rows = session.exec(
            select(ReleaseDecision.idempotency_key).where(ReleaseDecision.outcome == "attempting")
        ).all()
    return set(rows)


def decisions_for(engine: Engine, practice_ods: str | None = None) -> list[ReleaseDecision]:
    with Session(engine) as session:
        query = select(ReleaseDecision).order_by(
            col(ReleaseDecision.decided_at), col(ReleaseDecision.slot_id)
        )
        if practice_ods:
            query = query.where(ReleaseDecision.practice_ods == practice_ods)
        return list(session.exec(query).all())
