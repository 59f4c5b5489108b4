"""Fixtures for the dashboard tests: published snapshots and a served Streamlit app.

Two snapshots:

* `demo` (session): built by the real pipeline, `python -m flows.cli demo --days 2`, in a
  subprocess: the sandbox estate, nightly and intraday syncs and hourly releases through the
  real Prefect flows, then the published snapshot. It takes one to two minutes, so it is built
  once per session, started in the background as soon as collection finishes, and the tests
  that need it run last so the others run meanwhile (set `SLOTSYNC_TEST_DEMO_DIR` to a finished
  demo data dir to reuse one while developing). Tests compare what the pages show with SQL run
  on this snapshot.
* `small_snapshot` (session): a published snapshot written by hand, with only
  `mart_111_quota_daily` (three practices with known figures) and `publication`. It does not
  depend on the loader's internals; its columns are checked against the demo's marts. Because
  it lacks the other marts it also proves the pages degrade to "not available yet".

The server fixtures run `streamlit run dashboards/app.py` in its own process, as in
production, so DuckDB file locks behave as they would for a real user.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
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

from common.config import get_settings

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT_DIR = PROJECT_ROOT / "test-artifacts" / "screenshots"
FIRST_AS_OF = datetime(2026, 3, 5, 23, 30, tzinfo=UTC)
DEMO_TIMEOUT_S = 420
DEMO_OUTPUT = "demo-output.log"
# The syncs the tests run look 7 days ahead instead of 28: the pages show the days around
# the data's date, and a quarter of the slots keeps the session's demo short on 2 cores.
SYNC_ENV = {"SLOTSYNC_SYNC__HORIZON_DAYS": "7"}


def pipeline_env(prefect_home: Path) -> dict[str, str]:
    """Environment for a pipeline subprocess: its own Prefect home (the background demo runs
    beside other tests), the embedded server rather than any server the shell points at."""
    env = {**os.environ, **SYNC_ENV, "PREFECT_HOME": str(prefect_home)}
    env.pop("PREFECT_API_URL", None)
    return env


# Three practices in two sub-ICB locations of two ICBs (15N in QSL, 11M in QOX), one region.
# Quota is max(1, floor(list_size / 3000)): 3, 1 and 4.
# Reserved NHS 111 slots offered per practice and UK day. 2026-03-06 is a Friday, 07/08 the
# weekend, 09/10 Monday/Tuesday. Core days below quota: A81001 on Mon (1 < 3) and Tue (0 < 3);
# B82003 on Fri (2 < 4). Everything else meets its quota.
_SMALL_QUOTA_SQL = """
create table snap.marts.mart_111_quota_daily as
select
    p.ods::varchar as practice_ods, p.name::varchar as practice_name, p.system::varchar as clinical_system,
    p.sub_icb::varchar as sub_icb_code, p.icb::varchar as icb_code, 'Y58'::varchar as region_code,
    p.pcn::varchar as pcn_code, p.list_size::integer as list_size,
    true as accepts_111_booking, d.slot_day::date as slot_day, isodow(d.slot_day) <= 5 as is_core_day,
    greatest(1, p.list_size // 3000)::integer as quota, d.reserved::bigint as nhs111_reserved_offered,
    0::bigint as nhs111_reserved_free, d.unrestricted::bigint as nhs111_visible_free,
    0::bigint as nhs111_reserved_unused,
    case when isodow(d.slot_day) <= 5 then d.reserved >= greatest(1, p.list_size // 3000) end as meets_quota
from (values
    ('A81001', 'Riverside Surgery',        9000, 'EMIS',     '15N', 'QSL', 'U00001'),
    ('A81002', 'Hillview Medical Centre',  4000, 'SystmOne', '15N', 'QSL', 'U00001'),
    ('B82003', 'Oak Tree Practice',       12500, 'EMIS',     '11M', 'QOX', 'U00002')
) as p(ods, name, list_size, system, sub_icb, icb, pcn)
join (values
    ('A81001', date '2026-03-06', 3, 4), ('A81001', date '2026-03-07', 2, 1),
    ('A81001', date '2026-03-09', 1, 5), ('A81001', date '2026-03-10', 0, 6),
    ('A81002', date '2026-03-06', 1, 2), ('A81002', date '2026-03-09', 2, 2),
    ('A81002', date '2026-03-10', 1, 3),
    ('B82003', date '2026-03-06', 2, 6), ('B82003', date '2026-03-09', 4, 4),
    ('B82003', date '2026-03-10', 5, 2),
    ('B82003', date '2026-03-07', 0, 0), ('B82003', date '2026-03-08', 0, 0),
    ('A81001', date '2026-03-08', 0, 0), ('A81002', date '2026-03-07', 0, 0),
    ('A81002', date '2026-03-08', 0, 0)
) as d(ods, slot_day, reserved, unrestricted) on d.ods = p.ods
order by practice_ods, slot_day
"""


@dataclass(frozen=True)
class Snapshot:
    """Where a published snapshot lives; `marts` is the file the dashboard reads."""

    data_dir: Path
    marts: Path
    load_id: str
    as_of: datetime

    @property
    def warehouse(self) -> Path:
        return self.data_dir / "warehouse.duckdb"

    @property
    def registry(self) -> Path:
        return self.data_dir / "sandbox-registry.yaml"


def write_small_snapshot(
    data_dir: Path, *, load_id: str = "test-load-1", as_of: datetime = FIRST_AS_OF
) -> Snapshot:
    """Write the hand-made snapshot the way publishing does: a temp file renamed into place."""
    published = data_dir / "published"
    published.mkdir(parents=True, exist_ok=True)
    target = published / "dashboard.duckdb"
    tmp = published / ".dashboard-test.duckdb.tmp"
    tmp.unlink(missing_ok=True)
    con = duckdb.connect()
    try:
        con.execute(f"attach '{tmp}' as snap")
        con.execute("create schema snap.marts")
        con.execute(_SMALL_QUOTA_SQL)
        con.execute(
            "create table snap.marts.publication as select $load_id as load_id, "
            "$as_of::timestamptz as as_of, now() as published_at",
            {"load_id": load_id, "as_of": as_of},
        )
        con.execute("detach snap")
    finally:
        con.close()
    tmp.replace(target)
    return Snapshot(data_dir, target, load_id, as_of)


@pytest.fixture(scope="session")
def small_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    """Shared and never modified."""
    return write_small_snapshot(tmp_path_factory.mktemp("slotsync-small"))


def _publication(marts: Path) -> tuple[str, datetime]:
    con = duckdb.connect(str(marts), read_only=True)
    try:
        load_id, as_of = con.execute("select load_id, as_of from dashboard.marts.publication").fetchall()[0]
    finally:
        con.close()
    return str(load_id), as_of


@dataclass
class _DemoRun:
    """The background `slotsync demo` of this session."""

    root: Path
    proc: subprocess.Popen[bytes]
    started: float

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "demo.log"


_demo_run: _DemoRun | None = None


def _reused_demo() -> Path | None:
    reuse = os.environ.get("SLOTSYNC_TEST_DEMO_DIR")
    if reuse and (Path(reuse) / "published" / "dashboard.duckdb").exists():
        return Path(reuse)
    return None


def _start_demo() -> _DemoRun:
    root = Path(tempfile.mkdtemp(prefix="slotsync-demo-"))
    command = [sys.executable, "-m", "flows.cli", "demo", "--days", "2", "--data-dir", str(root / "data")]
    env = pipeline_env(root / "prefect")
    with (root / "demo.log").open("wb") as out:
        proc = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    return _DemoRun(root, proc, time.monotonic())


def _needs_demo(item: pytest.Item) -> bool:
    here = Path(__file__).parent
    return here in Path(str(item.path)).parents and "demo" in getattr(item, "fixturenames", ())


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the tests that need the demo last, so the others run while it builds."""
    needing = [item for item in items if _needs_demo(item)]
    if needing:
        later = set(needing)
        items[:] = [item for item in items if item not in later] + needing


def pytest_collection_finish(session: pytest.Session) -> None:
    global _demo_run
    if session.config.option.collectonly or _reused_demo() is not None:
        return
    if any(_needs_demo(item) for item in session.items):
        _demo_run = _start_demo()


def pytest_sessionfinish(session: pytest.Session) -> None:
    global _demo_run
    if _demo_run is not None:
        if _demo_run.proc.poll() is None:
            _demo_run.proc.terminate()
            try:
                _demo_run.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                _demo_run.proc.kill()
                _demo_run.proc.wait()
        shutil.rmtree(_demo_run.root, ignore_errors=True)
        _demo_run = None


@pytest.fixture(scope="session")
def demo() -> Snapshot:
    """A snapshot published by the real pipeline (`slotsync demo --days 2`). Never modified."""
    global _demo_run
    data_dir = _reused_demo()
    if data_dir is None:
        if _demo_run is None:  # collected some other way: build it now
            _demo_run = _start_demo()
        run = _demo_run
        try:
            returncode = run.proc.wait(timeout=max(1.0, DEMO_TIMEOUT_S - (time.monotonic() - run.started)))
        except subprocess.TimeoutExpired:
            pytest.fail(f"slotsync demo took over {DEMO_TIMEOUT_S}s; log:\n{_tail(run.log)}")
        if returncode != 0:
            pytest.fail(f"slotsync demo failed (exit {returncode}); log:\n{_tail(run.log)}")
        data_dir = run.data_dir
        # Keep what the demo printed beside its data: the consistency tests read its summary.
        shutil.copyfile(run.log, data_dir / DEMO_OUTPUT)
    marts = data_dir / "published" / "dashboard.duckdb"
    load_id, as_of = _publication(marts)
    return Snapshot(data_dir, marts, load_id, as_of)


def _tail(path: Path, lines: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture
def data_dir_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], None]]:
    """Point `get_settings()` at a data dir for in-process (AppTest) runs."""

    def _point(data_dir: Path) -> None:
        monkeypatch.setenv("SLOTSYNC_DATA_DIR", str(data_dir))
        get_settings.cache_clear()

    yield _point
    get_settings.cache_clear()


def copy_snapshot(snapshot: Snapshot, data_dir: Path) -> Snapshot:
    """A private copy of a published snapshot, for tests that publish over it."""
    (data_dir / "published").mkdir(parents=True, exist_ok=True)
    target = data_dir / "published" / "dashboard.duckdb"
    shutil.copyfile(snapshot.marts, target)
    return Snapshot(data_dir, target, snapshot.load_id, snapshot.as_of)


# ---------------------------------------------------------------------------- SQL truth


def sql_rows(marts: Path, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    """Run SQL straight on a snapshot file (schema `marts`): the independent truth."""
    con = duckdb.connect(str(marts), read_only=True)
    try:
        con.execute("set TimeZone = 'UTC'")
        con.execute("use dashboard.marts")
        return con.execute(sql, params or {}).fetchall()
    finally:
        con.close()


# The dashboard's default period, worked out in SQL: the 7 days up to the UK day of the data,
# clipped to the days the marts cover. Queries join `period` and filter `slot_day` on it.
PERIOD_CTE = """
period as (
    select
        case when d < lo then lo else greatest(lo, least(d, hi) - 6) end as first_day,
        case when d < lo then least(hi, lo + 6) else least(d, hi) end as last_day
    from (select (as_of at time zone 'Europe/London')::date as d from publication),
         (select min(slot_day) as lo, max(slot_day) as hi from (
              select slot_day from mart_111_quota_daily
              union all select slot_day from mart_slot_utilisation_daily
              union all select slot_day from mart_hub_utilisation_hourly))
),
orgs as (
    select distinct practice_ods, sub_icb_code from mart_slot_utilisation_daily
    union select distinct hub_ods, sub_icb_code from mart_hub_utilisation_hourly
)
"""


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
def serve(data_dir: Path, log_path: Path, *, now: datetime | None = None) -> Iterator[Server]:
    """`streamlit run dashboards/app.py` on a data dir, in its own process; `now` pins the
    dashboard's clock (`SLOTSYNC_NOW`), otherwise it judges freshness by the wall clock."""
    port = _free_port()
    env = {**os.environ, "SLOTSYNC_DATA_DIR": str(data_dir)}
    env.pop("SLOTSYNC_NOW", None)
    if now is not None:
        env["SLOTSYNC_NOW"] = now.isoformat()
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "dashboards/app.py",
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        "--client.toolbarMode",
        "viewer",
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
def small_server(small_snapshot: Snapshot, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(small_snapshot.data_dir, tmp_path_factory.mktemp("streamlit-small") / "server.log") as server:
        yield server


@pytest.fixture(scope="session")
def demo_server(demo: Snapshot, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(demo.data_dir, tmp_path_factory.mktemp("streamlit-demo") / "server.log") as server:
        yield server


def demo_output(demo: Snapshot) -> str:
    """What `slotsync demo` printed (its summary and closing command)."""
    path = demo.data_dir / DEMO_OUTPUT
    if not path.exists():
        pytest.skip(f"{path} not found: the reused demo dir was not built by this test session")
    return path.read_text(errors="replace")


def demo_now(demo: Snapshot) -> datetime:
    """The simulated end of the demo's replay, as its closing command passes it (`--now`)."""
    import re

    found = re.search(r"--now (\S+)", demo_output(demo))
    assert found, "the demo's last lines must give the dashboard command with --now"
    return datetime.fromisoformat(found.group(1).replace("Z", "+00:00"))


@pytest.fixture(scope="session")
def demo_server_at_end(demo: Snapshot, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The demo's dashboard judged at the replay's end, as the demo's closing command serves it."""
    log = tmp_path_factory.mktemp("streamlit-demo-end") / "server.log"
    with serve(demo.data_dir, log, now=demo_now(demo)) as server:
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
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
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
