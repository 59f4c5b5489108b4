"""List size and NHS 111 quota as of each day: a past day's quota uses the list size then.

A practice's list size changes mid-period (a later load's registry carries the new one); the
quota and utilisation marts must give the days before the change the old quota and the days
from it the new one, on both sides of the change, from one build.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import orjson

from connectors.registry import Practice, Registry
from tests.warehouse.conftest import OBSERVED_AT, land
from warehouse.loader import Warehouse
from warehouse.models import build_models

PRACTICE = "J82001"
PROVIDER = "NHS111"
BEFORE = datetime(2026, 4, 6, 9, 0, tzinfo=UTC)  # Monday: a reserved 111 slot, old list size
AFTER = datetime(2026, 4, 13, 9, 0, tzinfo=UTC)  # the Monday after: one under the new size
CHANGED_AT = datetime(2026, 4, 9, 1, 30, tzinfo=UTC)  # the load whose registry has the new size


def registry(list_size: int) -> Registry:
    return Registry(
        practices=(
            Practice(
                ods_code=PRACTICE,
                name="Fareham Road Surgery",
                list_size=list_size,
                clinical_system="EMIS Web",
                service_root="https://host/J82001/STU3/1/gpconnect",
                provider_asid="200000000101",
                accepts_111_booking=True,
                nhs111_provider_ods=PROVIDER,
            ),
        )
    )


def bundle(*starts: datetime) -> bytes:
    entries: list[dict[str, object]] = [
        {
            "resource": {
                "resourceType": "Slot",
                "id": f"s{n}",
                "schedule": {"reference": "Schedule/S1"},
                "status": "free",
                "start": start.isoformat(),
                "end": (start + timedelta(minutes=10)).isoformat(),
            }
        }
        for n, start in enumerate(starts)
    ]
    entries.append(
        {"resource": {"resourceType": "Schedule", "id": "S1", "actor": [{"reference": "Location/L1"}]}}
    )
    return orjson.dumps({"resourceType": "Bundle", "type": "searchset", "entry": entries})


def begin(warehouse: Warehouse, load_id: str, as_of: datetime, list_size: int) -> None:
    warehouse.begin_load(load_id, flow_name="nightly_sync", as_of=as_of, started_at=as_of)
    warehouse.sync_registry(registry(list_size), load_id)


def history(con: duckdb.DuckDBPyConnection) -> list[tuple[date, int, int]]:
    rows = con.execute(
        "select valid_from, list_size, nhs111_daily_quota from core.practice_list_size order by valid_from"
    ).fetchall()
    return [(d, size, quota) for d, size, quota in rows]


def test_quota_of_a_past_day_uses_the_list_size_in_force_that_day(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    warehouse = Warehouse(con)
    begin(warehouse, "l1", OBSERVED_AT, 9_000)  # quota 3
    # Both slots reserved for 111: in the provider's search, not in the unfiltered one.
    path = land(
        tmp_path / "l1.ndjson",
        PRACTICE,
        [("general", "none", bundle()), ("nhs111", f"urgent-care|{PROVIDER}", bundle(BEFORE, AFTER))],
        load_id="l1",
    )
    warehouse.load_practice_file(path, load_id="l1", practice_ods=PRACTICE)
    begin(warehouse, "l2", OBSERVED_AT + timedelta(days=1), 9_000)  # unchanged: no new row
    begin(warehouse, "l3", CHANGED_AT, 16_500)  # quota 5 from 9 April (UK day of the load)
    build_models(con, "l3")

    assert history(con) == [(date(2026, 3, 26), 9_000, 3), (date(2026, 4, 9), 16_500, 5)]
    quota = dict(
        con.execute("select slot_day, quota from marts.mart_111_quota_daily where is_core_day").fetchall()
    )
    sizes = dict(con.execute("select slot_day, list_size from marts.mart_111_quota_daily").fetchall())
    # The last day before the change and the first from it; and the window's first and last.
    assert (quota[date(2026, 4, 8)], sizes[date(2026, 4, 8)]) == (3, 9_000)
    assert (quota[date(2026, 4, 9)], sizes[date(2026, 4, 9)]) == (5, 16_500)
    assert quota[date(2026, 3, 26)] == 3 and quota[date(2026, 10, 30)] == 5
    # One reserved slot offered on each side, judged against that day's quota.
    below = dict(
        con.execute(
            "select slot_day, nhs111_reserved_offered || '/' || quota from marts.mart_111_quota_daily "
            "where slot_day in ('2026-04-06', '2026-04-13')"
        ).fetchall()
    )
    assert below == {date(2026, 4, 6): "1/3", date(2026, 4, 13): "1/5"}
    utilisation = dict(con.execute("select slot_day, quota from marts.mart_111_utilisation_daily").fetchall())
    assert utilisation == {date(2026, 4, 6): 3, date(2026, 4, 13): 5}
    # dim_practice still says what the registry says now.
    assert con.execute("select list_size, nhs111_daily_quota from core.dim_practice").fetchall() == [
        (16_500, 5)
    ]


def test_a_same_day_change_replaces_and_a_backfill_slots_in_between(con: duckdb.DuckDBPyConnection) -> None:
    warehouse = Warehouse(con)
    begin(warehouse, "a", datetime(2026, 5, 1, 1, 0, tzinfo=UTC), 6_000)
    begin(warehouse, "b", datetime(2026, 5, 1, 13, 0, tzinfo=UTC), 7_000)  # same UK day: replaces
    begin(warehouse, "c", datetime(2026, 6, 1, 1, 0, tzinfo=UTC), 9_000)
    begin(warehouse, "d", datetime(2026, 5, 15, 1, 0, tzinfo=UTC), 8_000)  # a backfill between
    # A backfill with the size in force on its day (not the latest one) adds nothing.
    begin(warehouse, "f", datetime(2026, 5, 10, 1, 0, tzinfo=UTC), 7_000)
    # 23:30 UTC on 31 May is 00:30 on 1 June in the UK (BST): that day's row, replaced.
    begin(warehouse, "e", datetime(2026, 5, 31, 23, 30, tzinfo=UTC), 12_000)
    assert history(con) == [
        (date(2026, 5, 1), 7_000, 2),
        (date(2026, 5, 15), 8_000, 2),
        (date(2026, 6, 1), 12_000, 4),
    ]


def test_a_registry_outside_any_load_is_in_force_from_today(con: duckdb.DuckDBPyConnection) -> None:
    Warehouse(con).sync_registry(registry(3_000), "not-in-the-ledger")
    [(day, size, quota)] = history(con)
    assert (size, quota) == (3_000, 1)
    assert abs((day - datetime.now(UTC).date()).days) <= 1
