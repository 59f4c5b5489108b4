"""Fixtures for the dashboard tests: a real published snapshot and a served Streamlit app.

The snapshot is built through the project's own code path (migrations, `build_models`,
`publish`) from a handful of staged slots, so the dashboard reads exactly the shape that
production publishes. The server fixture runs `streamlit run dashboards/app.py` in its own
process, as in production, so DuckDB file locks behave as they would for a real user.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from connectors.config import get_settings
from warehouse.db import open_warehouse
from warehouse.loader import Warehouse

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT_DIR = PROJECT_ROOT / "test-artifacts" / "screenshots"
FIRST_AS_OF = datetime(2026, 3, 5, 23, 30, tzinfo=UTC)

# Three practices in two CCGs. Quota is max(1, floor(list_size / 3000)): 3, 1 and 4.
_PRACTICES_SQL = """
insert into core.dim_practice
select ods, name, 'practice', list_size, system, true, 'NHS111', [], ccg, pcn, quota, $load_id
from (values
    ('A81001', 'Riverside Surgery',        9000, 'EMIS',     '15N', 'U00001', 3),
    ('A81002', 'Hillview Medical Centre',  4000, 'SystmOne', '15N', 'U00001', 1),
    ('B82003', 'Oak Tree Practice',       12500, 'EMIS',     '11M', 'U00002', 4)
) as t(ods, name, list_size, system, ccg, pcn, quota)
"""

# Slots per practice per UK day: (reserved for NHS 111 only, unrestricted). 2026-03-06 is a
# Friday, 07/08 the weekend, 09/10 Monday/Tuesday. Expected core days below quota: A81001 on
# Mon (1 < 3) and Tue (0 < 3); B82003 on Fri (2 < 4). Everything else meets its quota.
_SLOT_COUNTS_SQL = """
create temp table slot_counts as
select * from (values
    ('A81001', date '2026-03-06', 3, 4), ('A81001', date '2026-03-07', 2, 1),
    ('A81001', date '2026-03-09', 1, 5), ('A81001', date '2026-03-10', 0, 6),
    ('A81002', date '2026-03-06', 1, 2), ('A81002', date '2026-03-09', 2, 2),
    ('A81002', date '2026-03-10', 1, 3),
    ('B82003', date '2026-03-06', 2, 6), ('B82003', date '2026-03-09', 4, 4),
    ('B82003', date '2026-03-10', 5, 2)
) as t(practice_ods, slot_day, reserved, unrestricted)
"""

# One completed observation per practice and filter over one window covering 6-10 March.
_SYNC_WINDOW_SQL = """
insert into meta.sync_window
select
    p.practice_ods, 'slots', f.filter_key, $window_start, $window_end, $observed_at, $load_id, 0,
    $observed_at
from core.dim_practice as p
cross join (values ('general'), ('nhs111:NHS111')) as f(filter_key)
"""

# Unrestricted slots come back from both searches; reserved ones only from the 111 search.
_STAGING_SQL = """
insert into staging.stg_gpconnect__slots by name
with slots as (
    select
        practice_ods,
        practice_ods || '-' || strftime(slot_day, '%Y%m%d') || '-' || i as slot_id,
        i < reserved as is_reserved,
        (slot_day + interval 9 hour + i * interval 15 minute)::timestamp
            at time zone 'Europe/London' as start_at
    from slot_counts, unnest(range(reserved + unrestricted)) as r(i)
),
searches as (
    select s.*, 'nhs111' as filter_role, 'nhs111:NHS111' as filter_key from slots as s
    union all
    select s.*, 'general', 'general' from slots as s where not is_reserved
)
select
    practice_ods, filter_role, filter_key,
    $window_start as window_start, $window_end as window_end, $observed_at as observed_at,
    slot_id, 'S1' as schedule_id, start_at, start_at + interval 15 minute as end_at,
    strftime(start_at, '%Y-%m-%dT%H:%M:%S+00:00') as start_text, null as end_text,
    'free' as status, 'In-person' as delivery_channel, 'Routine' as slot_type, '1' as version_id,
    $load_id as load_id
from searches
"""


@dataclass(frozen=True)
class Snapshot:
    """Where the test snapshot lives; `marts` is the file the dashboard reads."""

    data_dir: Path
    warehouse: Path
    marts: Path
    load_id: str = "test-load-1"
    as_of: datetime = FIRST_AS_OF


def build_warehouse(warehouse: Path, load_id: str) -> None:
    """Stage a few days of slots for three practices and build the marts."""
    params: dict[str, Any] = {
        "load_id": load_id,
        "window_start": datetime(2026, 3, 6, tzinfo=UTC),
        "window_end": datetime(2026, 3, 11, tzinfo=UTC),
        "observed_at": FIRST_AS_OF,
    }
    con = open_warehouse(warehouse)
    try:
        con.execute(_PRACTICES_SQL, {"load_id": load_id})
        con.execute(_SLOT_COUNTS_SQL)
        con.execute(_SYNC_WINDOW_SQL, {k: params[k] for k in
                                       ("load_id", "window_start", "window_end", "observed_at")})
        con.execute(_STAGING_SQL, params)
        warehouse_writer = Warehouse(con)
        for (ods,) in con.execute("select practice_ods from core.dim_practice").fetchall():
            warehouse_writer.apply_observation(
                ods, window_start=params["window_start"], window_end=params["window_end"],
                observed_at=params["observed_at"], load_id=load_id,
            )
        warehouse_writer.build_models()
    finally:
        con.close()


def publish(snapshot: Snapshot, *, load_id: str, as_of: datetime) -> None:
    """Publish the warehouse marts the way the sync flow does (opens it read-write)."""
    con = open_warehouse(snapshot.warehouse)
    try:
        Warehouse(con).publish(snapshot.data_dir / "published", load_id=load_id, as_of=as_of)
    finally:
        con.close()


def make_snapshot(data_dir: Path) -> Snapshot:
    snap = Snapshot(data_dir, data_dir / "warehouse.duckdb", data_dir / "published" / "dashboard.duckdb")
    build_warehouse(snap.warehouse, snap.load_id)
    publish(snap, load_id=snap.load_id, as_of=snap.as_of)
    return snap


@pytest.fixture(scope="session")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    """Shared and never modified: tests that publish again use `isolated_snapshot`."""
    return make_snapshot(tmp_path_factory.mktemp("slotsync-data"))


@pytest.fixture
def isolated_snapshot(tmp_path: Path) -> Snapshot:
    return make_snapshot(tmp_path / "slotsync-data")


@pytest.fixture
def data_dir_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], None]]:
    """Point `get_settings()` at a data dir for in-process (AppTest) runs."""

    def _point(data_dir: Path) -> None:
        monkeypatch.setenv("SLOTSYNC_DATA_DIR", str(data_dir))
        get_settings.cache_clear()

    yield _point
    get_settings.cache_clear()


# ---------------------------------------------------------------------------- served app


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    raise RuntimeError(f"streamlit did not become healthy within {timeout_s:.0f}s")


@dataclass(frozen=True)
class Server:
    url: str
    pid: int


@contextmanager
def serve(snapshot: Snapshot, log_path: Path) -> Iterator[Server]:
    """`streamlit run dashboards/app.py` on a snapshot's data dir, in its own process."""
    port = _free_port()
    env = {**os.environ, "SLOTSYNC_DATA_DIR": str(snapshot.data_dir)}
    command = [
        sys.executable, "-m", "streamlit", "run", "dashboards/app.py",
        "--server.headless", "true", "--server.port", str(port),
        "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none", "--client.toolbarMode", "viewer",
    ]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            try:
                _wait_healthy(url, proc)
            except RuntimeError as exc:
                pytest.fail(f"{exc}; server log:\n{log_path.read_text(errors='replace')}")
            yield Server(url, proc.pid)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="session")
def streamlit_server(snapshot: Snapshot, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Serves the shared snapshot for the whole session."""
    with serve(snapshot, tmp_path_factory.mktemp("streamlit") / "server.log") as server:
        yield server


@pytest.fixture
def isolated_server(isolated_snapshot: Snapshot, tmp_path: Path) -> Iterator[Server]:
    """A server of its own, for tests that publish again and so change what is served."""
    with serve(isolated_snapshot, tmp_path / "server.log") as server:
        yield server


# ---------------------------------------------------------------------------- browser


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium)"
    if os.environ.get("SLOTSYNC_REQUIRE_BROWSER") == "1":
        pytest.fail(f"SLOTSYNC_REQUIRE_BROWSER=1 but {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Use the distro Chromium: `playwright install` cannot download browsers here."""
    _require_chromium()
    return {
        **browser_type_launch_args,
        "executable_path": str(CHROMIUM),
        "args": [
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
        ],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    # Wide enough for the sidebar, four KPI columns and a readable heat map.
    return {**browser_context_args, "viewport": {"width": 1440, "height": 1000}}


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    return SCREENSHOT_DIR



# ---------------------------------------------------------------------------- SQL truth


@dataclass(frozen=True)
class SqlKpis:
    practices: int
    core_practice_days: int
    core_days_below: int


def sql_kpis(marts: Path, *, ccg: str | None = None, practice: str | None = None) -> SqlKpis:
    """The page's KPIs computed independently, by SQL straight on the snapshot file."""
    con = duckdb.connect(str(marts), read_only=True)
    try:
        row = con.execute(
            """
            select
                count(distinct practice_ods),
                count(*) filter (where is_core_day),
                count(*) filter (where is_core_day and not meets_quota)
            from dashboard.marts.mart_111_quota_daily
            where ($ccg is null or ccg_code = $ccg) and ($practice is null or practice_ods = $practice)
            """,
            {"ccg": ccg, "practice": practice},
        ).fetchall()[0]
    finally:
        con.close()
    return SqlKpis(*(int(v) for v in row))


@pytest.fixture
def expected_kpis(snapshot: Snapshot) -> Callable[..., SqlKpis]:
    def _expected(*, ccg: str | None = None, practice: str | None = None) -> SqlKpis:
        return sql_kpis(snapshot.marts, ccg=ccg, practice=practice)

    return _expected
