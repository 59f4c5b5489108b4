"""Security: secrets from the environment only and never logged, SQL always parameterised,
loopback by default, the dashboard read-only.
"""

from __future__ import annotations

import ast
import ipaddress
import logging
import socket
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from prefect.blocks.system import Secret

from common.clock import SimulatedClock
from common.config import ConsumerIdentity, SandboxSettings, Settings, get_settings
from connectors.gpconnect.spine import Interaction, spine_headers
from connectors.registry import Registry, RegistryError, validate_rows
from dashboards import data as dashboard_data
from flows.secrets import patient_hash_key
from flows.sync import nightly_sync
from sandbox.server import SandboxServer
from tests.flows.conftest import run_async
from tests.reliability import Result, record
from tests.warehouse.conftest import fixture_bytes, land
from warehouse.db import open_warehouse
from warehouse.loader import LandingFile, PracticeDataError, PracticeLoad, Warehouse

AS_OF = datetime(2026, 3, 24, 2, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]
KNOWN_SECRET = "s3cret-hmac-key-that-must-never-be-logged-0451"
INJECTIONS = (
    "Robert'); DROP TABLE core.dim_practice; --",
    "x' OR '1'='1",
    '"; DELETE FROM meta.load_ledger; --',
    "$load_id ? {} %s \\'; ATTACH '/tmp/evil.duckdb' AS evil; --",
    "Surgery\n; CREATE TABLE pwned(x int);",
)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(clock=SimulatedClock(AS_OF)) as server:
        yield server


class _Collect(logging.Handler):
    """Every record, with every attribute (message, args, extra fields), as text."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.getMessage()} {record.__dict__!r}")


def test_no_secret_and_no_jwt_in_the_logs_of_a_real_sync(
    sandbox: SandboxServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SLOTSYNC_PATIENT_HASH_KEY", KNOWN_SECRET)
    get_settings.cache_clear()
    # The marker is a real one: every GP Connect request carries a JWT starting `eyJ`.
    jwt = spine_headers(
        ConsumerIdentity(),
        provider_asid="200000000101",
        interaction=Interaction.SEARCH_SLOTS,
        audience="http://x",
        issued_at=AS_OF,
    )["Authorization"]
    assert jwt.startswith("Bearer eyJ")
    collect = _Collect()
    names = ("", "prefect", "slotsync", "httpx", "httpcore", "uvicorn")
    loggers = [logging.getLogger(name) for name in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(collect)
        lg.setLevel(logging.DEBUG)
    try:
        registry_path = tmp_path / "registry.yaml"
        sandbox.registry.write(registry_path)
        practices = [p.ods_code for p in sandbox.registry.practices if p.accepts_111_booking][:3]
        result = run_async(
            nightly_sync(
                registry_path=str(registry_path),
                data_dir=str(tmp_path),
                warehouse_path=str(tmp_path / "wh.duckdb"),
                as_of=AS_OF,
                practices=practices,
            )
        )
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(collect)
            lg.setLevel(level)
        get_settings.cache_clear()
    assert all(o["status"] == "ok" for o in result["outcomes"])
    assert result["booking_logs"]["organisations_ok"], "the booking-log leg (which uses the key) ran"
    assert len(collect.lines) > 50, "the capture saw the run's logging"
    out, err = capfd.readouterr()
    texts = [*collect.lines, out, err]
    leaks = [t[:300] for t in texts if KNOWN_SECRET in t or "eyJ" in t]
    assert not leaks, leaks
    record(
        Result(
            "security",
            "secret and JWTs in logs of a real sync (DEBUG everywhere)",
            len(collect.lines),
            len(collect.lines),
            None,
            None,
            "no record or console line holds the key or a JWT",
            "tests/flows/test_security.py::test_no_secret_and_no_jwt_in_the_logs_of_a_real_sync",
            not_measured="not a data-loading test",
        )
    )


def test_secrets_come_from_the_environment_and_never_print(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLOTSYNC_PATIENT_HASH_KEY", KNOWN_SECRET)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.patient_hash_key.get_secret_value() == KNOWN_SECRET
    for text in (repr(settings), str(settings), settings.model_dump_json()):
        assert KNOWN_SECRET not in text
    # No secret in code: a literal assigned to a secret-looking name only in the sandbox.
    offenders = []
    for path in [
        *ROOT.glob("connectors/**/*.py"),
        *ROOT.glob("flows/*.py"),
        *ROOT.glob("warehouse/*.py"),
        *ROOT.glob("dashboards/**/*.py"),
    ]:
        if "sandbox" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.keyword)
                and node.arg in ("password", "token", "secret", "api_key")
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            ):
                offenders.append(f"{path}:{node.lineno}")
    assert not offenders, offenders


def _injected_registry(sandbox: SandboxServer, count: int) -> Registry:
    """The estate's registry (hubs included), the first `count` practices renamed."""
    practices = [
        p.model_copy(
            update={
                "name": INJECTIONS[i % len(INJECTIONS)],
                "sub_icb_code": INJECTIONS[i % 2],
                "pcn_code": "'; --",
            }
        )
        if i < count
        else p
        for i, p in enumerate(sandbox.registry.practices)
    ]
    return sandbox.registry.model_copy(update={"practices": tuple(practices)})


def test_injection_strings_in_names_are_data_from_registry_to_dashboard(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    registry = _injected_registry(sandbox, len(INJECTIONS))
    chosen = [p.ods_code for p in registry.practices[: len(INJECTIONS)]]
    registry_path = tmp_path / "it's-a-registry.yaml"
    registry.write(registry_path)
    data_dir = tmp_path / "o'brien; drop"  # quotes in paths reach ATTACH and read_json too
    result = run_async(
        nightly_sync(
            registry_path=str(registry_path),
            data_dir=str(data_dir),
            warehouse_path=str(data_dir / "wh.duckdb"),
            as_of=AS_OF,
            practices=chosen,
        )
    )
    assert all(o["status"] == "ok" for o in result["outcomes"])
    con = duckdb.connect(str(data_dir / "wh.duckdb"), read_only=True)
    try:
        names = dict(con.execute("select practice_ods, practice_name from core.dim_practice").fetchall())
        tables = {t for (t,) in con.execute("select table_name from information_schema.tables").fetchall()}
        ledger = con.execute("select count(*) from meta.load_ledger").fetchall()[0][0]
    finally:
        con.close()
    assert names == {p.ods_code: p.name for p in registry.practices}  # the registry, verbatim
    assert {"dim_practice", "load_ledger", "fct_slot_history"} <= tables and "pwned" not in tables
    assert ledger == 1
    assert not Path("/tmp/evil.duckdb").exists()
    # And out through the published snapshot the dashboard reads.
    snapshot = data_dir / "published" / "dashboard.duckdb"
    shown = dashboard_data.read_quota_daily(snapshot)
    assert set(shown["practice_name"]) == set(INJECTIONS)
    record(
        Result(
            "security",
            "SQL injection strings in names, CCG codes and paths",
            len(INJECTIONS),
            len(INJECTIONS),
            None,
            None,
            "stored and shown verbatim; no statement ran",
            "tests/flows/test_security.py::test_injection_strings_in_names_are_data_from_registry_to_dashboard",
            not_measured="not a data-loading test",
        )
    )


def test_injection_ods_codes_are_refused_by_the_registry_and_data_to_the_loader(tmp_path: Path) -> None:
    row = {
        "ods_code": INJECTIONS[0],
        "name": "x",
        "list_size": 1,
        "clinical_system": "EMIS Web",
        "service_root": "http://127.0.0.1:1/X/STU3/1/gpconnect",
        "provider_asid": "200000000101",
        "accepts_111_booking": False,
    }
    with pytest.raises(RegistryError, match="ods_code"):
        validate_rows([row], "injection.yaml")
    # The loader never trusts the code either: a landing file under such a name is data.
    con = open_warehouse(tmp_path / "wh.duckdb")
    try:
        results = []
        for ods in INJECTIONS:
            path = land(
                tmp_path / f"{abs(hash(ods))}'.ndjson",
                ods,
                [("general", "none", fixture_bytes("emis_three_slots.json"))],
            )
            (result,) = Warehouse(con).load_practice_files([LandingFile(ods, path)], load_id="test-load")
            results.append(result)
        assert all(isinstance(r, PracticeLoad | PracticeDataError) for r in results)
        stored = {
            ods
            for (ods,) in con.execute(
                "select distinct practice_ods from staging.stg_gpconnect__slots"
            ).fetchall()
        }
        assert stored == set(INJECTIONS)
        assert con.execute("select count(*) from meta.load_ledger").fetchall() == [(0,)]
    finally:
        con.close()


def non_loopback_ipv4() -> list[str]:
    """This machine's IPv4 interface addresses other than loopback (`ip -o -4 addr`)."""
    try:
        listing = subprocess.run(
            ["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        listing = ""
    addresses = [line.split()[3].split("/")[0] for line in listing.splitlines() if len(line.split()) > 3]
    return [a for a in addresses if not ipaddress.ip_address(a).is_loopback]


def test_the_sandbox_binds_loopback_by_default() -> None:
    assert SandboxSettings().host == "127.0.0.1"
    others = non_loopback_ipv4()
    # A loop over zero addresses proves nothing: this test needs a second interface address.
    assert others, "no non-loopback IPv4 address on this machine to try the sandbox's port on"
    with SandboxServer(clock=SimulatedClock(AS_OF)) as server:
        assert server.base_url.startswith("http://127.0.0.1:")
        port = int(server.base_url.rsplit(":", 1)[1].split("/")[0])
        for address in others:
            # The address itself takes connections (a listener on it answers) ...
            with socket.create_server((address, 0)) as control:
                socket.create_connection(control.getsockname()[:2], timeout=2).close()
            # ... but the sandbox's port is not open on it.
            with pytest.raises(ConnectionRefusedError), socket.create_connection((address, port), timeout=2):
                pass
    record(
        Result(
            "security",
            "sandbox binds 127.0.0.1 by default",
            len(others),
            len(others),
            None,
            None,
            f"loopback only; refused on {len(others)} other interface address(es), each shown "
            "to accept connections on another port",
            "tests/flows/test_security.py::test_the_sandbox_binds_loopback_by_default",
            not_measured="not a data-loading test",
        )
    )


def test_the_dashboard_opens_the_published_snapshot_read_only(tmp_path: Path) -> None:
    snapshot = tmp_path / "dashboard.duckdb"
    con = duckdb.connect(str(snapshot))
    con.execute("create schema marts; create table marts.t as select 1 as x")
    con.close()
    reader = dashboard_data._open_read_only(snapshot)
    try:
        with pytest.raises(duckdb.Error, match="read-only"):
            reader.execute("create table marts.u as select 1 as x")
    finally:
        reader.close()
    # Every connection the dashboard package opens is read-only.
    calls = []
    for path in ROOT.glob("dashboards/**/*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "connect":
                read_only = [k for k in node.keywords if k.arg == "read_only"]
                value = read_only[0].value if read_only else None
                calls.append(
                    (f"{path.name}:{node.lineno}", isinstance(value, ast.Constant) and value.value is True)
                )
    assert calls and all(ok for _, ok in calls), calls
    checked = len(calls) + 1
    record(
        Result(
            "security",
            "dashboard opens the snapshot read-only",
            checked,
            checked,
            None,
            None,
            "writes refused; every duckdb.connect in dashboards/ is read_only=True",
            "tests/flows/test_security.py::test_the_dashboard_opens_the_published_snapshot_read_only",
            not_measured="not a data-loading test",
        )
    )


def test_the_hash_key_can_come_from_a_prefect_secret_block() -> None:
    async def scenario() -> tuple[str, str]:
        await Secret(value=KNOWN_SECRET).save("slotsync-test-hash-key", overwrite=True)
        from_block = await patient_hash_key(
            Settings(
                _env_file=None,  # type: ignore[call-arg]
                patient_hash_key_block="slotsync-test-hash-key",
            )
        )
        from_env = await patient_hash_key(Settings(_env_file=None))  # type: ignore[call-arg]
        return from_block.get_secret_value(), from_env.get_secret_value()

    from_block, from_env = run_async(scenario())
    assert from_block == KNOWN_SECRET and from_env != KNOWN_SECRET
    with pytest.raises(ValueError, match=r"no-such-block.*Secret block"):
        run_async(
            patient_hash_key(
                Settings(
                    _env_file=None,  # type: ignore[call-arg]
                    patient_hash_key_block="no-such-block",
                )
            )
        )
