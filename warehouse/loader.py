"""The single writer: moves landed responses into raw/staging and rebuilds marts.

Every write is one transaction per (load, practice): raw rows, the staging rows of each
(practice, filter, window, observation) unit (deleted and re-inserted, so re-running an
observation is idempotent), and the `meta.sync_window` rows that mark the units complete.
If a practice's data is unusable the transaction rolls back, the raw bytes are still kept
(in their own transaction) for forensics, and the practice is reported with a clear error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from connectors.bookinglog import AppointmentRead, BookingLogExport
from connectors.gpconnect.errors import GpConnectError
from connectors.registry import Registry
from connectors.uktime import parse_fhir_datetime
from warehouse.db import sql_text

# Order matters: later models read earlier ones.
VIEW_MODELS: tuple[tuple[str, str], ...] = (
    ("staging.stg_booking_log__appointments", "models/staging/stg_booking_log__appointments.sql"),
    ("staging.stg_gpconnect__appointment_reads", "models/staging/stg_gpconnect__appointment_reads.sql"),
)
TABLE_MODELS: tuple[tuple[str, str], ...] = (
    ("core.fct_appointment", "models/core/fct_appointment.sql"),
    ("core.int_slot_states", "models/intermediate/int_slot_states.sql"),
    ("marts.mart_111_quota_daily", "models/marts/mart_111_quota_daily.sql"),
    ("marts.mart_111_utilisation_daily", "models/marts/mart_111_utilisation_daily.sql"),
    ("marts.mart_slot_utilisation_daily", "models/marts/mart_slot_utilisation_daily.sql"),
    ("marts.mart_hub_utilisation_hourly", "models/marts/mart_hub_utilisation_hourly.sql"),
    ("marts.mart_releases_daily", "models/marts/mart_releases_daily.sql"),
    ("marts.mart_pipeline_freshness", "models/marts/mart_pipeline_freshness.sql"),
    ("marts.mart_reconciliation_findings", "models/marts/mart_reconciliation_findings.sql"),
)


class PracticeDataError(ValueError):
    """A practice's fetched data cannot be accepted into staging."""

    def __init__(self, practice_ods: str, problem: str) -> None:
        self.practice_ods = practice_ods
        self.problem = problem
        super().__init__(
            f"practice {practice_ods}, search free slots: {problem}. Next step: the raw "
            "response is kept in raw.gpc_slot_search; raise it with the supplier and re-run "
            "the practice once fixed"
        )


@dataclass(frozen=True)
class PracticeLoad:
    practice_ods: str
    responses: int
    slot_rows: int


class Warehouse:
    """Write operations on an open warehouse connection (the only writer)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    # ------------------------------------------------------------------ ledger

    def begin_load(
        self, load_id: str, *, flow_name: str, as_of: datetime, started_at: datetime,
        flow_run_id: str | None = None,
    ) -> None:
        self.con.execute(
            """
            insert into meta.load_ledger (load_id, flow_name, flow_run_id, as_of, started_at, status)
            values ($load_id, $flow_name, $flow_run_id, $as_of, $started_at, 'running')
            on conflict (load_id) do update set status = 'running', started_at = excluded.started_at
            """,
            {"load_id": load_id, "flow_name": flow_name, "flow_run_id": flow_run_id,
             "as_of": as_of, "started_at": started_at},
        )

    def finish_load(
        self, load_id: str, *, status: str, completed_at: datetime, practices_ok: int,
        practices_failed: int, detail: str | None = None,
    ) -> None:
        self.con.execute(
            """
            update meta.load_ledger
            set status = $status, completed_at = $completed_at, practices_ok = $ok,
                practices_failed = $failed, detail = $detail
            where load_id = $load_id
            """,
            {"status": status, "completed_at": completed_at, "ok": practices_ok,
             "failed": practices_failed, "detail": detail, "load_id": load_id},
        )

    def record_practice_runs(
        self, load_id: str, outcomes: Sequence[Mapping[str, Any]], *, finished_at: datetime
    ) -> None:
        """Record every practice's outcome for a load in one transaction (one commit)."""
        columns = ("interaction", "http_status", "error_class", "message", "next_step")
        table = pa.table(
            {
                "load_id": pa.array([load_id] * len(outcomes), pa.string()),
                "practice_ods": pa.array([o["practice_ods"] for o in outcomes], pa.string()),
                "status": pa.array([o["status"] for o in outcomes], pa.string()),
                **{
                    name: pa.array([o.get(name) for o in outcomes],
                                   pa.int32() if name == "http_status" else pa.string())
                    for name in columns
                },
                "responses": pa.array([o.get("responses", 0) for o in outcomes], pa.int32()),
                "slot_rows": pa.array([o.get("slot_rows", 0) for o in outcomes], pa.int32()),
                "finished_at": pa.array([finished_at] * len(outcomes), pa.timestamp("us", tz="UTC")),
            }
        )
        self._replace_rows("meta.practice_run", table, "practice_run_rows")

    def _replace_rows(self, target: str, table: pa.Table, view: str) -> None:
        """Insert-or-replace an Arrow table into a keyed table in one transaction."""
        self.con.execute("BEGIN TRANSACTION")
        try:
            self.con.register(view, table)
            self.con.execute(f"insert or replace into {target} by name select * from {view}")
            self.con.unregister(view)
            self.con.execute("COMMIT")
        except Exception:
            self.con.execute("ROLLBACK")
            raise

    def sync_registry(self, registry: Registry, load_id: str) -> None:
        """Replace core.dim_practice with the registry used by this load."""
        rows = [
            (p.ods_code, p.name, p.kind, p.list_size, p.clinical_system, p.accepts_111_booking,
             p.nhs111_provider_ods, list(p.booking_hubs), p.ccg_code, p.pcn_code,
             p.nhs111_quota if p.kind == "practice" else 0, load_id)
            for p in registry.practices
        ]
        table = pa.table(
            {name: [row[i] for row in rows] for i, name in enumerate(
                ["practice_ods", "practice_name", "kind", "list_size", "clinical_system",
                 "accepts_111_booking", "nhs111_provider_ods", "booking_hubs", "ccg_code",
                 "pcn_code", "nhs111_daily_quota", "load_id"])}
        )
        organisations = pa.table(
            {
                "ods_code": [o.ods_code for o in registry.booking_organisations],
                "name": [o.name for o in registry.booking_organisations],
                "kind": [o.kind for o in registry.booking_organisations],
                "booking_log_format": [o.booking_log_format for o in registry.booking_organisations],
                "load_id": [load_id] * len(registry.booking_organisations),
            },
            schema=pa.schema([(name, pa.string()) for name in
                              ("ods_code", "name", "kind", "booking_log_format", "load_id")]),
        )
        self.con.execute("BEGIN TRANSACTION")
        try:
            self.con.execute("delete from core.dim_practice")
            self.con.register("registry_rows", table)
            self.con.execute("insert into core.dim_practice select * from registry_rows")
            self.con.unregister("registry_rows")
            self.con.execute("delete from core.dim_booking_organisation")
            self.con.register("organisation_rows", organisations)
            self.con.execute("insert into core.dim_booking_organisation select * from organisation_rows")
            self.con.unregister("organisation_rows")
            self.con.execute("COMMIT")
        except Exception:
            self.con.execute("ROLLBACK")
            raise

    # ------------------------------------------------------------------ loading

    def load_practice_file(
        self, path: Path, *, load_id: str, practice_ods: str, stream: str = "slots"
    ) -> PracticeLoad:
        """Load one landing file as one transaction; raw is kept even if staging is refused.

        `stream` names the `meta.sync_window` state the units complete: `slots` for the
        scheduled syncs, another name (a backfill's) to keep that state untouched.
        """
        params = {"load_id": load_id, "practice_ods": practice_ods}
        self.con.execute("BEGIN TRANSACTION")
        try:
            responses = self._land(path, load_id, practice_ods)
            self._stage()
            self._check_staging(params)
            slot_rows = self._replace_staging_units(params)
            self._mark_units_complete(stream)
            self._apply_complete_observations(params)
            self._drop_batch()
            self.con.execute("COMMIT")
        except PracticeDataError:
            self.con.execute("ROLLBACK")
            self._keep_raw_only(path, load_id, practice_ods)
            raise
        except Exception:
            self.con.execute("ROLLBACK")
            raise
        return PracticeLoad(practice_ods, responses, slot_rows)

    # One practice's batch lives in two temporary tables for the length of its transaction
    # (temporary tables are in memory and never written to the WAL): `loader_landed`, the
    # landing file's rows in raw's shape, and `loader_staged`, their typed slots. Every
    # check and count reads them, never raw or staging, so a load costs the same whatever
    # the warehouse already holds, and each bundle is parsed once by read_json and once by
    # json_transform.

    def _land(self, path: Path, load_id: str, practice_ods: str) -> int:
        """Read the landing file, check it belongs here, and replace its raw rows."""
        try:
            self.con.execute(
                "create or replace temp table loader_landed as "
                + sql_text("load/land_slot_search.sql"),
                {"path": str(path)},
            )
        except (duckdb.InvalidInputException, duckdb.ConversionException) as exc:
            raise PracticeDataError(practice_ods, f"response is not valid FHIR JSON ({exc})") from exc
        responses, wrong = self.con.execute(
            "select count(*), count(*) filter (where load_id is distinct from $load_id "
            "or practice_ods is distinct from $practice_ods) from loader_landed",
            {"load_id": load_id, "practice_ods": practice_ods},
        ).fetchall()[0]
        if wrong:
            raise PracticeDataError(practice_ods, "landing file names another load or practice")
        # Re-landing the same load for a practice (a re-run) replaces its raw rows.
        self.con.execute(
            "delete from raw.gpc_slot_search where load_id = ? and practice_ods = ?",
            [load_id, practice_ods],
        )
        self.con.execute("insert into raw.gpc_slot_search by name select * from loader_landed")
        return int(responses)

    def _keep_raw_only(self, path: Path, load_id: str, practice_ods: str) -> None:
        self.con.execute("BEGIN TRANSACTION")
        try:
            self._land(path, load_id, practice_ods)
            self._drop_batch()
            self.con.execute("COMMIT")
        except Exception:
            # Unparseable bytes cannot be stored as JSON; the landing file itself is kept.
            self.con.execute("ROLLBACK")

    def _stage(self) -> None:
        """Type the landed bundles (models/staging/stg_gpconnect__slots.sql) into `loader_staged`."""
        self.con.execute(
            "create or replace temp table loader_staged as "
            + sql_text("models/staging/stg_gpconnect__slots.sql")
        )

    def _drop_batch(self) -> None:
        self.con.execute("drop table if exists loader_staged")
        self.con.execute("drop table if exists loader_landed")

    def _check_staging(self, params: dict[str, str]) -> None:
        """Strict where the data would be wrong: every slot needs id, schedule, start, end."""
        problems = self.con.execute(
            """
            select
                count(*) filter (where slot_id is null or slot_id = '') as missing_id,
                count(*) filter (where schedule_id is null) as missing_schedule,
                count(*) filter (where start_at is null) as bad_start,
                count(*) filter (where end_at is null) as bad_end
            from loader_staged
            """
        ).fetchall()[0]
        labels = ("without an id", "without a schedule reference", "with a missing or invalid start",
                  "with a missing or invalid end")
        found = [f"{n} slot(s) {label}" for n, label in zip(problems, labels, strict=True) if n]
        if found:
            raise PracticeDataError(params["practice_ods"], "; ".join(found))

    def _replace_staging_units(self, params: dict[str, str]) -> int:
        """Delete the staging rows of every unit in the batch, insert the batch's; returns rows."""
        # The constant practice filter lets DuckDB skip row groups by their min/max.
        self.con.execute(
            """
            delete from staging.stg_gpconnect__slots as s
            using (
                select distinct practice_ods, filter_key, window_start, window_end, observed_at
                from loader_landed
            ) as u
            where s.practice_ods = $practice_ods
              and s.practice_ods = u.practice_ods and s.filter_key = u.filter_key
              and s.window_start = u.window_start and s.window_end = u.window_end
              and s.observed_at = u.observed_at
            """,
            {"practice_ods": params["practice_ods"]},
        )
        inserted = self.con.execute(
            "insert into staging.stg_gpconnect__slots by name select * from loader_staged"
        ).fetchall()
        return int(inserted[0][0])

    def _mark_units_complete(self, stream: str) -> None:
        self.con.execute(
            """
            insert or replace into meta.sync_window
            select
                l.practice_ods, $stream, l.filter_key, l.window_start, l.window_end, l.observed_at,
                l.load_id, coalesce(c.slots, 0), now()
            from loader_landed as l
            left join (
                select filter_key, window_start, window_end, observed_at, count(*) as slots
                from loader_staged
                group by all
            ) as c using (filter_key, window_start, window_end, observed_at)
            """,
            {"stream": stream},
        )

    def _apply_complete_observations(self, params: dict[str, str]) -> None:
        """Fold each complete observation of this load into core.fct_slot_history.

        An observation is complete when every searchFilter the practice needs returned for
        that window; otherwise the audience of its slots cannot be told and it waits for a
        re-run.
        """
        needed = self.con.execute(
            "select 1 + (case when accepts_111_booking then 1 else 0 end) + len(booking_hubs) "
            "from core.dim_practice where practice_ods = $practice_ods",
            {"practice_ods": params["practice_ods"]},
        ).fetchall()
        if not needed:
            return
        units = self.con.execute(
            """
            select window_start, window_end, observed_at
            from raw.gpc_slot_search
            where load_id = $load_id and practice_ods = $practice_ods
            group by all
            having count(distinct filter_key) >= $needed
            order by observed_at, window_start
            """,
            {**params, "needed": needed[0][0]},
        ).fetchall()
        for window_start, window_end, observed_at in units:
            self.apply_observation(
                params["practice_ods"], window_start=window_start, window_end=window_end,
                observed_at=observed_at, load_id=params["load_id"],
            )

    def apply_observation(
        self, practice_ods: str, *, window_start: datetime, window_end: datetime,
        observed_at: datetime, load_id: str,
    ) -> None:
        """Fold one complete (practice, window, observed_at) observation into slot history.

        Runs inside the caller's transaction; the staging rows must already be in place.
        """
        self.con.execute(sql_text("load/apply_slot_observation.sql"), {
            "practice_ods": practice_ods, "window_start": window_start, "window_end": window_end,
            "observed_at": observed_at, "load_id": load_id,
        })
        self.con.execute(
            "delete from core.fct_slot_history where practice_ods = $practice_ods "
            "and slot_id in (select slot_id from slot_history_update)",
            {"practice_ods": practice_ods},
        )
        self.con.execute("insert into core.fct_slot_history select * from slot_history_update")
        self.con.execute("drop table slot_history_update")

    # ------------------------------------------------------------------ bookings

    def load_bookings(
        self,
        load_id: str,
        *,
        observed_at: datetime,
        exports: Sequence[BookingLogExport],
        fetch_failures: Sequence[GpConnectError],
        reads: Sequence[AppointmentRead],
    ) -> None:
        """Store booking-log exports, fetch outcomes and appointment reads in one transaction.

        Re-running a load replaces that load's rows, so it is idempotent.
        """
        entries = [(export, entry) for export in exports for entry in export.entries]
        entry_table = pa.table(
            {
                "load_id": pa.array([load_id] * len(entries), pa.string()),
                "booking_org_ods": pa.array([x.booking_org_ods for x, _ in entries], pa.string()),
                "observed_at": pa.array([observed_at] * len(entries), _UTC),
                "fetched_at": pa.array([x.fetched_at for x, _ in entries], _UTC),
                "appointment_id": pa.array([e.appointment_id for _, e in entries], pa.string()),
                "practice_ods": pa.array([e.practice_ods for _, e in entries], pa.string()),
                "slot_ids": pa.array([list(e.slot_ids) for _, e in entries], pa.list_(pa.string())),
                "start_text": pa.array([e.start for _, e in entries], pa.string()),
                "end_text": pa.array([e.end for _, e in entries], pa.string()),
                "start_at": pa.array([e.start_utc for _, e in entries], _UTC),
                "end_at": pa.array([e.end_utc for _, e in entries], _UTC),
                "booked_at": pa.array([e.booked_at for _, e in entries], _UTC),
                "cancelled_at": pa.array([e.cancelled_at for _, e in entries], _UTC),
                "status": pa.array([e.status for _, e in entries], pa.string()),
                "patient_key": pa.array([e.patient_key for _, e in entries], pa.string()),
            }
        )
        read_table = pa.table(
            {
                "load_id": pa.array([load_id] * len(reads), pa.string()),
                "practice_ods": pa.array([r.practice_ods for r in reads], pa.string()),
                "appointment_id": pa.array([r.appointment_id for r in reads], pa.string()),
                "observed_at": pa.array([observed_at] * len(reads), _UTC),
                "fetched_at": pa.array([r.fetched_at for r in reads], _UTC),
                "outcome": pa.array([r.outcome for r in reads], pa.string()),
                "http_status": pa.array([r.http_status for r in reads], pa.int32()),
                "status": pa.array([r.status for r in reads], pa.string()),
                "version_id": pa.array([r.version_id for r in reads], pa.string()),
                "start_text": pa.array([r.start for r in reads], pa.string()),
                "end_text": pa.array([r.end for r in reads], pa.string()),
                "start_at": pa.array([_utc_or_none(r.start) for r in reads], _UTC),
                "end_at": pa.array([_utc_or_none(r.end) for r in reads], _UTC),
                "slot_ids": pa.array([list(r.slot_ids) for r in reads], pa.list_(pa.string())),
                "booking_org_ods": pa.array([r.booking_org_ods for r in reads], pa.string()),
                "patient_key": pa.array([r.patient_key for r in reads], pa.string()),
                "created_text": pa.array([r.created for r in reads], pa.string()),
                "error": pa.array([r.error for r in reads], pa.string()),
            }
        )
        fetches = [
            (x.booking_org_ods, "ok", x.fetched_at, x.http_status, x.body_bytes, len(x.entries), None, None)
            for x in exports
        ] + [
            (f.practice_ods, "failed", None, f.status, None, 0, str(f), f.next_step)
            for f in fetch_failures
        ]
        fetch_table = pa.table(
            {
                "load_id": pa.array([load_id] * len(fetches), pa.string()),
                "booking_org_ods": pa.array([f[0] for f in fetches], pa.string()),
                "status": pa.array([f[1] for f in fetches], pa.string()),
                "fetched_at": pa.array([f[2] for f in fetches], _UTC),
                "http_status": pa.array([f[3] for f in fetches], pa.int32()),
                "body_bytes": pa.array([f[4] for f in fetches], pa.int64()),
                "entries": pa.array([f[5] for f in fetches], pa.int32()),
                "message": pa.array([f[6] for f in fetches], pa.string()),
                "next_step": pa.array([f[7] for f in fetches], pa.string()),
            }
        )
        self.con.execute("BEGIN TRANSACTION")
        try:
            for table in ("raw.booking_log_entry", "raw.gpc_appointment_read", "meta.booking_log_fetch"):
                self.con.execute(f"delete from {table} where load_id = ?", [load_id])
            for name, arrow in (("raw.booking_log_entry", entry_table),
                                ("raw.gpc_appointment_read", read_table),
                                ("meta.booking_log_fetch", fetch_table)):
                self.con.register("incoming_rows", arrow)
                self.con.execute(f"insert into {name} by name select * from incoming_rows")
                self.con.unregister("incoming_rows")
            self.con.execute("COMMIT")
        except Exception:
            self.con.execute("ROLLBACK")
            raise

    # ------------------------------------------------------------------ models

    def build_models(self, load_id: str | None = None) -> None:
        """(Re)build views and tables in one transaction; record the load's reconciliation."""
        self.con.execute("BEGIN TRANSACTION")
        try:
            for name, path in VIEW_MODELS:
                self.con.execute(f"create or replace view {name} as {sql_text(path)}")
            for name, path in TABLE_MODELS:
                self.con.execute(f"create or replace table {name} as {sql_text(path)}")
            if load_id is not None:
                self.con.execute(
                    """
                    insert or replace into meta.reconciliation_summary
                    select $load_id, practice_ods, reason_code, count(*)
                    from marts.mart_reconciliation_findings
                    group by all
                    """,
                    {"load_id": load_id},
                )
            self.con.execute("COMMIT")
        except Exception:
            self.con.execute("ROLLBACK")
            raise

    def mart_tables(self) -> list[str]:
        rows = self.con.execute(
            "select table_name from information_schema.tables "
            "where table_schema = 'marts' and table_type = 'BASE TABLE' order by table_name"
        ).fetchall()
        return [r[0] for r in rows]

    # ------------------------------------------------------------------ publishing

    def publish(self, published_dir: Path, *, load_id: str, as_of: datetime) -> Path:
        """Copy the marts into a fresh file and swap it in by rename.

        Dashboards read only this snapshot through short-lived read-only connections, so
        they never hold a lock on the warehouse the sync is writing.
        """
        published_dir.mkdir(parents=True, exist_ok=True)
        target = published_dir / "dashboard.duckdb"
        tmp = published_dir / f".dashboard-{os.getpid()}.duckdb.tmp"
        tmp.unlink(missing_ok=True)
        self.con.execute(f"attach '{_sql_literal(tmp)}' as snapshot")
        try:
            self.con.execute("create schema snapshot.marts")
            for table in self.mart_tables():
                self.con.execute(
                    f"create table snapshot.marts.{table} as select * from marts.{table}"
                )
            self.con.execute(
                "create table snapshot.marts.publication as "
                "select $load_id as load_id, $as_of::timestamptz as as_of, now() as published_at",
                {"load_id": load_id, "as_of": as_of},
            )
        finally:
            self.con.execute("detach snapshot")
        tmp.replace(target)
        return target


_UTC = pa.timestamp("us", tz="UTC")


def _utc_or_none(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return parse_fhir_datetime(text)
    except ValueError:
        return None


def _sql_literal(path: Path) -> str:
    return str(path).replace("'", "''")


def new_load_id(flow_name: str, as_of: datetime, suffix: str) -> str:
    return f"{flow_name}-{as_of.strftime('%Y%m%dT%H%M%SZ')}-{suffix}"

