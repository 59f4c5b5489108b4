"""`slotsync export`: the published marts, suppressed as the dashboard suppresses them, for the
ICB's own tools (Parquet, CSV, one xlsx workbook, or a PostgreSQL schema; `flows/export_postgres.py`).

Why: ICB analysts work in SQL and Power BI, not in slotsync's Streamlit app. Every export reads
the published snapshot only (as the dashboard does), cuts it by period and organisation, and
applies `dashboards.suppression.suppress` under the disclosure rule in force
(`dashboards.disclosure`): the same code path as every page and CSV download, not a copy.

Each export carries what it is: the period, the filters, the load id, the publication time and
the disclosure rule (Parquet key-value metadata, a `.json` sidecar per CSV, a cover sheet in the
workbook), plus a data dictionary generated from the marts' own SQL headers (`dictionary.md`).

Idempotent per load: the same load and cut give the same files (nothing depends on when the
export ran; files are written to a temporary name and renamed into place), so re-running an
export after a publish, or twice, is safe.

Columns a disclosure policy covers are text: a count, or the rule's mark ("<5", "*") where
it is hidden, exactly as the dashboard's CSV downloads show them.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any, Literal

import pandas as pd  # type: ignore[import-untyped]  # pandas-stubs is not in the lock

from connectors.registry import RegistryError, load_registry
from dashboards import data, health, releases, utilisation
from dashboards.disclosure import Rule
from dashboards.suppression import Policy, suppress

MARTS_SQL_DIR = Path(__file__).resolve().parents[1] / "warehouse" / "sql" / "models" / "marts"
Format = Literal["parquet", "csv", "xlsx"]
FORMATS: tuple[str, ...] = ("parquet", "csv", "xlsx")
WORKBOOK = "slotsync-marts.xlsx"
DICTIONARY = "dictionary.md"
METADATA_PREFIX = "slotsync."


class ExportError(ValueError):
    """Bad input or a snapshot that cannot be exported: one line for the user."""


# ---------------------------------------------------------------------------- what is exported


@dataclass(frozen=True)
class MartExport:
    """One exported mart: how it is read, cut and suppressed.

    `policy` None: the mart holds no patient-derived counts (pipeline and data-quality status).
    Per-row marts are suppressed with every total a reader could form (whole table, per
    organisation, per day): the export is not beside a page that says which are shown.
    """

    table: str
    sql: str
    policy: Policy | None = None
    day_column: str | None = None
    ods_column: str | None = "practice_ods"
    source: str = ""  # the SQL file whose header documents it (default: `<table>.sql`)

    @property
    def header_file(self) -> str:
        return self.source or f"{self.table}.sql"


def _every_total(policy: Policy, ods: str, day: str) -> Policy:
    return replace(policy, totals_by=((), (ods,), (day,)))


NHS111_UTILISATION_POLICY = Policy(
    protected=(
        "booked_by_111",
        "booked_before_seen",
        "booked_by_others",
        "released_then_booked",
        "disappeared_unconfirmed",
    ),
    outcomes=("unused", "unknown", "still_free"),
    rates=("utilisation_111",),
    capacity=("offered", "released"),
    rate_terms=(("utilisation_111", ("booked_by_111",), ("offered",)),),
)
SLOT_UTILISATION_POLICY = replace(
    utilisation.POLICY,
    protected=("booked", "booked_confirmed", "booked_inferred"),
    outcomes=("unused", "unknown", "still_free"),
    rates=("utilisation",),
    rate_terms=(("utilisation", ("booked",), ("offered",)),),
)
HUB_POLICY = replace(
    utilisation.POLICY, rates=("utilisation",), rate_terms=(("utilisation", ("booked",), ("offered",)),)
)
# Findings are exported as counts (the dashboard's read): slot and appointment references never
# leave the snapshot. Each reason is a count about patients unless it is about capacity.
FINDINGS_POLICY = Policy(protected=(), independent=("findings",))

EXPORTS: tuple[MartExport, ...] = (
    MartExport(
        "mart_111_quota_daily", data.MARTS["quota_daily"].sql, None, "slot_day"
    ),  # reserved capacity only
    MartExport(
        "mart_111_utilisation_daily",
        data.MARTS["nhs111_utilisation"].sql,
        _every_total(NHS111_UTILISATION_POLICY, "practice_ods", "slot_day"),
        "slot_day",
    ),
    MartExport(
        "mart_slot_utilisation_daily",
        data.MARTS["slot_utilisation"].sql,
        _every_total(SLOT_UTILISATION_POLICY, "practice_ods", "slot_day"),
        "slot_day",
    ),
    MartExport(
        "mart_hub_utilisation_hourly",
        data.MARTS["hub_hourly"].sql,
        _every_total(HUB_POLICY, "hub_ods", "slot_day"),
        "slot_day",
        "hub_ods",
    ),
    MartExport(
        "mart_releases_daily",
        data.MARTS["releases"].sql,
        _every_total(releases.DECISION_POLICY, "practice_ods", "slot_day"),
        "slot_day",
    ),
    MartExport(
        "mart_reconciliation_findings",
        data.MARTS["findings"].sql,
        replace(FINDINGS_POLICY, totals_by=((), ("practice_ods",), ("day",), ("reason_code",))),
        "day",
    ),
    MartExport("mart_pipeline_freshness", data.MARTS["freshness"].sql),
    MartExport(
        "mart_data_quality_checks",
        "select * from mart_data_quality_checks order by practice_ods, suite, expectation",
    ),
    MartExport(
        "mart_quarantined_batches",
        "select * from mart_quarantined_batches order by observed_at, practice_ods",
    ),
)
# Capacity reasons (quota, set-up) are not about patients: shown exactly, as on the Data health page.
CAPACITY_REASONS = frozenset(health.CAPACITY_REASONS)


# ---------------------------------------------------------------------------- the cut


@dataclass(frozen=True)
class Cut:
    """The period (UK days, inclusive; None: the snapshot's whole range) and organisations."""

    since: date | None = None
    until: date | None = None
    icb: tuple[str, ...] = ()
    sub_icb: tuple[str, ...] = ()
    pcn: tuple[str, ...] = ()

    def filters_line(self) -> str:
        parts = [
            f"{label} {', '.join(values)}"
            for label, values in (("ICB", self.icb), ("sub-ICB", self.sub_icb), ("PCN", self.pcn))
            if values
        ]
        return "; ".join(parts) or "none (all practices and hubs)"


@dataclass(frozen=True)
class Exported:
    """One export's identity, written into every file it makes."""

    load_id: str
    as_of: datetime
    published_at: datetime
    first_day: date | None
    last_day: date | None
    filters: str
    rule: Rule
    tables: dict[str, pd.DataFrame] = field(repr=False)

    def metadata(self) -> dict[str, str]:
        return {
            "load_id": self.load_id,
            "data_as_of": self.as_of.isoformat(),
            "published_at": self.published_at.isoformat(),
            "period_from": "" if self.first_day is None else self.first_day.isoformat(),
            "period_to": "" if self.last_day is None else self.last_day.isoformat(),
            "filters": self.filters,
            "disclosure_rule": self.rule.name,
            "disclosure_rule_description": self.rule.describe(),
        }


def parse_day(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ExportError(f"{option} must be a day as YYYY-MM-DD, got {text!r}") from None


def collect(data_dir: Path, cut: Cut, rule: Rule, *, registry: Path | None = None) -> Exported:
    """Read, cut and suppress every mart of the published snapshot under `rule`."""
    if cut.since and cut.until and cut.since > cut.until:
        raise ExportError(f"--since {cut.since} is after --until {cut.until}")
    snapshot = data_dir / "published" / data.SNAPSHOT_FILE
    if not snapshot.exists():
        raise ExportError(
            f"no published snapshot at {snapshot}: run `slotsync demo` or `slotsync sync` first"
        )
    publication = data.read_publication(snapshot)
    catalogue = data.read_catalogue(snapshot, expect_version=publication.version)
    first = cut.since or catalogue.first_day
    last = cut.until or catalogue.last_day
    allowed = _allowed_ods(catalogue.practices, cut, registry or data_dir / "sandbox-registry.yaml")
    tables: dict[str, pd.DataFrame] = {}
    for mart in EXPORTS:
        if not catalogue.has(mart.table):
            continue
        frame = data.read_frame(mart.sql, path=snapshot)
        frame = data._without_identifiers(frame)
        frame = _cut(frame, mart, first, last, allowed)
        tables[mart.table] = _suppressed(frame, mart, rule)
    if data.read_publication(snapshot).version != publication.version:
        raise ExportError("a newer snapshot was published while exporting: run the export again")
    return Exported(
        load_id=publication.load_id,
        as_of=publication.as_of,
        published_at=publication.published_at,
        first_day=first,
        last_day=last,
        filters=cut.filters_line(),
        rule=rule,
        tables=tables,
    )


def _allowed_ods(practices: pd.DataFrame, cut: Cut, registry: Path) -> set[str] | None:
    if not (cut.icb or cut.sub_icb or cut.pcn):
        return None
    allowed = set(practices["practice_ods"].astype(str))
    if cut.sub_icb:
        allowed &= set(practices.loc[practices["sub_icb_code"].isin(cut.sub_icb), "practice_ods"])
    if cut.pcn:
        allowed &= set(practices.loc[practices["pcn_code"].isin(cut.pcn), "practice_ods"])
    if cut.icb and practices["icb_code"].notna().any():
        allowed &= set(practices.loc[practices["icb_code"].isin(cut.icb), "practice_ods"])
    elif cut.icb:
        # Snapshots published before the marts carried ICBs: the registry knows each practice's ICB.
        if not registry.exists():
            raise ExportError(f"--icb needs the practice registry, not found at {registry} (use --registry)")
        try:
            entries = load_registry(registry).practices
        except RegistryError as exc:
            raise ExportError(str(exc).splitlines()[0]) from None
        allowed &= {p.ods_code for p in entries if p.icb_code in cut.icb}
    if not allowed:
        raise ExportError(f"no practice or hub matches the filters ({cut.filters_line()})")
    return allowed


def _cut(
    frame: pd.DataFrame, mart: MartExport, first: date | None, last: date | None, allowed: set[str] | None
) -> pd.DataFrame:
    keep = pd.Series(True, index=frame.index)
    if mart.day_column and mart.day_column in frame.columns and first and last:
        days = pd.to_datetime(frame[mart.day_column]).dt.date
        keep &= (days >= first) & (days <= last)
    if allowed is not None and mart.ods_column and mart.ods_column in frame.columns:
        keep &= frame[mart.ods_column].isin(allowed)
    return frame.loc[keep].reset_index(drop=True)


def _suppressed(frame: pd.DataFrame, mart: MartExport, rule: Rule) -> pd.DataFrame:
    if mart.policy is None:
        return _plain_types(frame)
    if mart.table == "mart_reconciliation_findings":
        patient = frame.loc[~frame["reason_code"].isin(CAPACITY_REASONS)]
        capacity = frame.loc[frame["reason_code"].isin(CAPACITY_REASONS)]
        shown = suppress(patient.reset_index(drop=True), mart.policy, rule=rule).export()
        exact = capacity.assign(findings=capacity["findings"].map(str))
        out = pd.concat([shown.astype({"findings": "object"}), exact], ignore_index=True)
        out["findings"] = out["findings"].map(_text)
        return _plain_types(out.sort_values(["practice_ods", "reason_code", "day"]).reset_index(drop=True))
    result = suppress(frame, mart.policy, rule=rule).export()
    for column in _covered(mart.policy, frame):
        result[column] = result[column].map(_text)
    return _plain_types(result)


def _covered(policy: Policy, frame: pd.DataFrame) -> list[str]:
    every = (*policy.protected, *policy.outcomes, *policy.rates, *policy.independent, *policy.capacity)
    return [c for c in every if c in frame.columns]


def _text(value: object) -> str | None:
    """A covered cell as text: its mark, an integer count, or a rate to 4 decimals."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    if isinstance(value, str):
        return value
    number = float(value)  # type: ignore[arg-type]
    return str(int(number)) if number.is_integer() else f"{number:.4f}"


def _plain_types(frame: pd.DataFrame) -> pd.DataFrame:
    """Days as dates, instants as UTC, so every writer sees the same types."""
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[column]) and column in ("slot_day", "day"):
            out[column] = out[column].dt.date
    return out


# ---------------------------------------------------------------------------- dictionary


@dataclass(frozen=True)
class ColumnDoc:
    name: str
    meaning: str
    unit: str


@dataclass(frozen=True)
class MartDoc:
    table: str
    grain: str
    columns: tuple[ColumnDoc, ...]


# Columns every mart shares; their meaning is the same everywhere, so it is said once here
# rather than in each mart's header.
SHARED_COLUMNS: dict[str, str] = {
    "practice_ods": "ODS code of the GP practice (or hub)",
    "practice_name": "name of the practice or hub",
    "hub_ods": "ODS code of the extended-access hub",
    "hub_name": "name of the hub",
    "clinical_system": "the practice's clinical system supplier",
    "sub_icb_code": "sub-ICB location code (the former CCG code, e.g. 10K)",
    "icb_code": "integrated care board (ICB) ODS code",
    "region_code": "NHS England region ODS code",
    "pcn_code": "primary care network code",
    "kind": "practice or hub",
    "list_size": "registered patients on the practice list (in force on slot_day where the row has one)",
    "slot_day": "UK calendar day the slots start on",
    "day": "UK calendar day the finding concerns",
    "iso_day_of_week": "ISO day of the week of slot_day (1 = Monday)",
    "slot_hour": "UK hour of day the slots start in",
    "audience": "who the slot was first offered to: general | nhs111 | hub",
    "is_core_day": "Monday to Friday (the days an NHS 111 quota applies)",
    "is_final": "every slot of the row has started, so its outcome is settled",
    "quota": "NHS 111 daily quota: max(1, floor(list_size / 3000)) on core days, list size in force that day",
    "load_id": "the load that produced the row",
    "reason_code": "why the sources disagree (see the mart's header for each code)",
    "findings": "number of findings of this reason on this practice-day",
    "utilisation": "booked / offered",
    "utilisation_111": "booked_by_111 / offered",
    "uptake": "released_then_booked / (released + queued)",
    "booked_confirmed": "booked slots confirmed by a booking organisation's log and the practice",
    "booked_inferred": "booked slots inferred: gone before their start and not freed again",
    "still_free": "slots still free that have not started yet",
    "nhs111_reserved_offered": "slots reserved for NHS 111 offered on the day at any observation",
    "nhs111_reserved_free": "slots reserved for NHS 111 still free at the last observation",
    "nhs111_reserved_unused": "reserved NHS 111 slots still free at a check within 2 hours of start",
    "accepts_111_booking": "the practice is set up for NHS 111 direct booking",
    "meets_quota": "reserved NHS 111 slots offered >= quota (core days only)",
    "last_observed_at": "last complete capture of the practice's slots",
    "last_completed_at": "when that capture finished",
    "latest_status": "outcome of the practice's latest run",
    "latest_error_class": "kind of error of the latest run, if it failed",
    "latest_error": "the latest run's error message, if it failed",
    "latest_next_step": "what the operator does about it",
    "latest_load_id": "the load of the practice's latest run",
    "observed_at": "when the data was observed",
    "stream": "which sync stream the batch belongs to",
    # Used only where a mart's header does not define them itself.
    "offered": "slots offered (seen free at any observation)",
    "booked": "slots booked (confirmed or inferred)",
    "unused": "slots still free at a check within 2 hours of their start",
    "unknown": "slots free at a last check earlier than that (a late booking cannot be ruled out)",
    "nhs111_visible_free": "free slots NHS 111 could see (reserved plus unrestricted); not counted for quota",
    "booked_before_seen": "slots the 111 provider booked before any search saw them (from its log)",
    "booked_by_others": "reserved NHS 111 slots booked by someone other than the 111 provider",
    "released_then_booked": "slots given back to the practice that were then booked",
    "failed_or_interrupted": "releases that failed or were interrupted; the next run retries them",
}


def dictionary(tables: Sequence[str], frames: dict[str, pd.DataFrame]) -> list[MartDoc]:
    """Each exported mart's grain and every column's meaning and unit, from its SQL header."""
    docs = []
    for mart in EXPORTS:
        if mart.table not in tables:
            continue
        grain, described = _header(mart.header_file)
        columns = []
        for name in frames[mart.table].columns:
            meaning = described.get(name) or SHARED_COLUMNS.get(name)
            if not meaning:
                raise ExportError(f"column {mart.table}.{name} is not documented in {mart.header_file}")
            columns.append(ColumnDoc(name, meaning, _unit(name, mart)))
        if mart.table == "mart_reconciliation_findings":
            grain = "one row per practice, reason code and day: the number of findings (" + grain + ")"
        docs.append(MartDoc(mart.table, grain, tuple(columns)))
    return docs


@cache
def _header(file_name: str) -> tuple[str, dict[str, str]]:
    """The grain and column definitions in a mart's leading `--` comment."""
    lines = []
    for line in (MARTS_SQL_DIR / file_name).read_text(encoding="utf-8").splitlines():
        if not line.startswith("--"):
            break
        lines.append(line[2:])
    columns: dict[str, str] = {}
    for line in lines:
        listed = re.match(r"^\s{2,}([a-z_0-9]+)\s{2,}(.+)$", line)
        if listed:
            columns[listed.group(1)] = listed.group(2).strip().rstrip(".")
    prose = " ".join(line.strip() for line in lines if not re.match(r"^\s{2,}[a-zA-Z_0-9]+\s{2,}", line))
    for match in re.finditer(r"`([a-z_0-9]+)`\s*=\s*(.+?)(?=;\s|\.\s|,\s`|$)", prose):
        columns.setdefault(match.group(1), match.group(2).strip().rstrip("."))
    grain_match = re.search(r"Grain:\s*(.+?)(?:\.\s|:\s|$)", prose)
    grain = grain_match.group(1).strip() if grain_match else ""
    return grain, columns


def _unit(name: str, mart: MartExport) -> str:
    policy = mart.policy
    hidden = policy is not None and name in _covered(policy, pd.DataFrame(columns=[name]))
    if name in ("utilisation", "utilisation_111", "uptake"):
        unit = "ratio 0-1"
    elif name.endswith("_at"):
        unit = "UTC instant"
    elif name in ("slot_day", "day"):
        unit = "date (UK)"
    elif name.startswith(("is_", "meets_", "accepts_", "passed")):
        unit = "true/false"
    elif name in ("quota", "list_size", "findings", "rows_checked", "unexpected_rows") or (
        policy is not None and name in (*policy.protected, *policy.outcomes, *policy.capacity)
    ):
        unit = "patients" if name == "list_size" else ("findings" if name == "findings" else "slots")
    elif name.startswith("nhs111_"):
        unit = "slots"
    elif name in ("slot_hour", "iso_day_of_week"):
        unit = "number"
    else:
        unit = "text"
    return f"{unit}; text, hidden cells marked" if hidden else unit


def dictionary_markdown(exported: Exported, docs: list[MartDoc]) -> str:
    meta = exported.metadata()
    lines = [
        "# slotsync export: data dictionary",
        "",
        *(f"- **{key}**: {value}" for key, value in meta.items()),
        "",
        f"Disclosure: {exported.rule.note}",
        "",
    ]
    for doc in docs:
        lines += [
            f"## {doc.table}",
            "",
            f"Grain: {doc.grain}.",
            "",
            "| column | meaning | unit |",
            "|---|---|---|",
        ]
        lines += [f"| {c.name} | {c.meaning.replace('|', '/')} | {c.unit} |" for c in doc.columns]
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- files


def write_files(exported: Exported, target: Path, fmt: str) -> list[Path]:
    """Write one file per mart (one workbook for xlsx) and the dictionary; returns the paths."""
    if fmt not in FORMATS:
        raise ExportError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if target.exists() and not target.is_dir():
        raise ExportError(f"--to {target} exists and is not a directory")
    target.mkdir(parents=True, exist_ok=True)
    docs = dictionary(list(exported.tables), exported.tables)
    written = [_atomic_text(target / DICTIONARY, dictionary_markdown(exported, docs))]
    if fmt == "parquet":
        written += [_parquet(exported, table, frame, target) for table, frame in exported.tables.items()]
    elif fmt == "csv":
        for table, frame in exported.tables.items():
            written.append(_atomic_text(target / f"{table}.csv", frame.to_csv(index=False)))
            doc = next(d for d in docs if d.table == table)
            sidecar = {
                **exported.metadata(),
                "table": table,
                "grain": doc.grain,
                "columns": [{"name": c.name, "meaning": c.meaning, "unit": c.unit} for c in doc.columns],
            }
            written.append(_atomic_text(target / f"{table}.csv.json", json.dumps(sidecar, indent=2) + "\n"))
    else:
        written.append(_workbook(exported, docs, target / WORKBOOK))
    return written


def _atomic_text(path: Path, text: str) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def _parquet(exported: Exported, table: str, frame: pd.DataFrame, target: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow = pa.Table.from_pandas(frame, preserve_index=False)
    meta = {f"{METADATA_PREFIX}{k}".encode(): v.encode() for k, v in exported.metadata().items()}
    meta[f"{METADATA_PREFIX}table".encode()] = table.encode()
    arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), **meta})
    path = target / f"{table}.parquet"
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(arrow, tmp)
    os.replace(tmp, path)
    return path


def _workbook(exported: Exported, docs: list[MartDoc], path: Path) -> Path:
    from openpyxl import Workbook

    book = Workbook()
    cover = book.active
    cover.title = "About"
    cover.append(["slotsync export"])
    for key, value in exported.metadata().items():
        cover.append([key, value])
    cover.append(["disclosure_note", exported.rule.note])
    cover.append([])
    cover.append(["sheet", "grain"])
    for doc in docs:
        cover.append([_sheet_name(doc.table), doc.grain])
    dictionary_sheet = book.create_sheet("Dictionary")
    dictionary_sheet.append(["table", "column", "meaning", "unit"])
    for doc in docs:
        for column in doc.columns:
            dictionary_sheet.append([doc.table, column.name, column.meaning, column.unit])
    for table, frame in exported.tables.items():
        sheet = book.create_sheet(_sheet_name(table))
        sheet.append(list(frame.columns))
        for row in frame.itertuples(index=False):
            sheet.append([_cell(v) for v in row])
    # The publication time, not the export time: the same load gives the same workbook.
    stamp = exported.published_at.replace(tzinfo=None)
    book.properties.created = stamp
    book.properties.modified = stamp
    tmp = path.with_name(f".{path.name}.tmp")
    book.save(tmp)
    os.replace(tmp, path)
    return path


def _sheet_name(table: str) -> str:
    return table.removeprefix("mart_")[:31]  # Excel's limit


def _cell(value: Any) -> Any:
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.replace(tzinfo=None)  # Excel has no time zones: every instant is UTC
    if hasattr(value, "item"):
        return value.item()
    return value
