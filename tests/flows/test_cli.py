"""The `slotsync` commands as a user runs them: real subprocesses, real Prefect."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from connectors.registry import load_registry
from flows.cli import app

CLI = [sys.executable, "-m", "flows.cli"]


def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    return env


@pytest.mark.slow
def test_demo_replays_a_day_and_prints_the_summary(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    done = subprocess.run(
        [*CLI, "demo", "--days", "1", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=600,
        env=cli_env(tmp_path),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "scheduled runs for 42 practices and hubs" in out
    assert "0 practice capture(s) failed" in out
    # The summary speaks a commissioner's words, names the rebook assumption beside the effect.
    assert "What the dashboard opens on" in out and "REBOOK_AFTER_RELEASE_CHANCE" in out
    assert "release_unused_111" not in out and "skipped_gone_since_snapshot" not in out
    assert f"slotsync dashboard --data-dir {data_dir}" in out
    assert "http://127.0.0.1:8501" in out
    assert (data_dir / "published" / "dashboard.duckdb").exists()


@pytest.mark.slow
def test_standalone_sandbox_can_be_synced_through_its_registry(tmp_path: Path) -> None:
    registry_file = tmp_path / "sandbox-registry.yaml"
    sandbox = subprocess.Popen(
        [*CLI, "sandbox", "--port", "0", "--registry-out", str(registry_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=cli_env(tmp_path),
    )
    try:
        deadline = time.monotonic() + 60
        while not registry_file.exists():
            assert sandbox.poll() is None, sandbox.stdout.read() if sandbox.stdout else ""
            assert time.monotonic() < deadline, "sandbox did not write its registry"
            time.sleep(0.2)
        registry = load_registry(registry_file)
        assert all(p.service_root.startswith("http://127.0.0.1:") for p in registry.practices)
        first = registry.practices[0].ods_code
        synced = subprocess.run(
            [
                *CLI,
                "sync",
                "--registry",
                str(registry_file),
                "--warehouse",
                str(tmp_path / "wh" / "warehouse.duckdb"),
                "--practice",
                first,
                "--intraday",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            env=cli_env(tmp_path),
        )
        assert synced.returncode == 0, synced.stdout + synced.stderr
        assert "1 practice(s) ok, 0 failed" in synced.stdout
    finally:
        sandbox.send_signal(signal.SIGTERM)
        output, _ = sandbox.communicate(timeout=30)
    assert sandbox.returncode == 0
    assert "sandbox stopped" in output


def test_registry_validate_names_row_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "registry.yaml"
    bad.write_text("practices:\n  - ods_code: J8200\n    name: X\n")
    result = CliRunner().invoke(app, ["registry", "validate", str(bad)])
    assert result.exit_code == 1
    assert "row 1 (J8200) field ods_code" in result.output
    assert "row 1 (J8200) field service_root" in result.output


def test_sync_refuses_a_bad_registry_before_doing_anything(tmp_path: Path) -> None:
    bad = tmp_path / "registry.yaml"
    bad.write_text("practices: []\n")
    result = CliRunner().invoke(
        app, ["sync", "--registry", str(bad), "--warehouse", str(tmp_path / "w.duckdb")]
    )
    assert result.exit_code == 1 and "no practices" in result.output
    assert not (tmp_path / "w.duckdb").exists()


# Packages the registry commands do not need; any of them at `slotsync` import time cost seconds
# (pandas, Prefect and Great Expectations most) on a file that takes a fraction of one to read.
NOT_FOR_REGISTRY_COMMANDS = (
    "pandas", "numpy", "pyarrow", "duckdb", "prefect", "great_expectations", "sqlalchemy", "sqlmodel",
    "streamlit", "starlette", "uvicorn", "httpx", "jwt", "pydantic_settings", "sandbox.server", "lab.demo",
)  # fmt: skip


@pytest.mark.parametrize("command", ["from-csv", "validate"])
def test_registry_commands_import_only_what_they_need(tmp_path: Path, command: str) -> None:
    fixture = Path(__file__).parents[1] / "fixtures" / "nhs111" / "workbook-sample.csv"
    out = tmp_path / "registry.yaml"
    from_csv = [str(fixture), "--skip-invalid", "-o", str(out), "--service-root-template", "https://h/{ods}/x"]
    if command == "validate":
        assert CliRunner().invoke(app, ["registry", "from-csv", *from_csv]).exit_code == 0
    args = from_csv if command == "from-csv" else [str(out)]
    probe = (
        "import sys\n"
        "from flows.cli import main\n"
        f"sys.argv = ['slotsync', 'registry', {command!r}, *{args!r}]\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert exc.code in (0, None), exc.code\n"
        f"print('LOADED', sorted(m for m in {NOT_FOR_REGISTRY_COMMANDS!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, env=cli_env(tmp_path)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "LOADED []" in done.stdout, done.stdout
    assert load_registry(out).by_ods().keys() == {"J82001", "J82003"}



def _good_registry(tmp_path: Path) -> Path:
    path = tmp_path / "registry.yaml"
    path.write_text(
        "practices:\n  - {ods_code: J82001, name: X, list_size: 1, clinical_system: other,\n"
        "     service_root: 'http://127.0.0.1:1/J82001/STU3/1/gpconnect', provider_asid: '200000000101',\n"
        "     accepts_111_booking: false}\n"
    )
    return path


def test_sync_with_a_garbage_as_of_is_a_one_line_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, [
        "sync", "--registry", str(_good_registry(tmp_path)), "--warehouse", str(tmp_path / "w.duckdb"),
        "--as-of", "garbage",
    ])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "--as-of 'garbage' is not an ISO instant" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "w.duckdb").exists()


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("https://h/{0}/x", "only {ods} is allowed"),
        ("https://h/{ods}/{region}", "only {ods} is allowed"),
        ("https://h/{ods.__class__}/x", "only {ods} is allowed"),
        ("https://h/{ods:d}/x", "only {ods} is allowed"),
        ("https://h/{ods/x", "is not a valid template"),
        ("http://h/{ods}/x", "must be https"),
    ],
)
def test_a_bad_service_root_template_is_a_one_line_error(
    tmp_path: Path, template: str, reason: str
) -> None:
    fixture = Path(__file__).parents[1] / "fixtures" / "nhs111" / "workbook-sample.csv"
    result = CliRunner().invoke(app, [
        "registry", "from-csv", str(fixture), "-o", str(tmp_path / "r.yaml"), "--skip-invalid",
        "--service-root-template", template,
    ])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert reason in result.output and "Traceback" not in result.output
    assert not (tmp_path / "r.yaml").exists()


@pytest.mark.parametrize("template", [
    "https://h/{0}/x", "https://h/{ods!r}/x", "https://h/{ods:>12}/x", "https://h/{ods/x", "http://h/{ods}/x",
])
def test_a_bad_service_root_template_is_exactly_one_line_naming_the_option(
    tmp_path: Path, template: str
) -> None:
    fixture = Path(__file__).parents[1] / "fixtures" / "nhs111" / "workbook-sample.csv"
    result = CliRunner().invoke(app, [
        "registry", "from-csv", str(fixture), "-o", str(tmp_path / "r.yaml"), "--skip-invalid",
        "--service-root-template", template,
    ])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    (line,) = result.output.splitlines()
    assert line.startswith(f"--service-root-template {template!r} ") and "Next step: pass a template" in line
    assert not (tmp_path / "r.yaml").exists()


def test_an_as_of_with_no_utc_instant_is_a_one_line_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, [
        "sync", "--registry", str(_good_registry(tmp_path)), "--warehouse", str(tmp_path / "w.duckdb"),
        "--as-of", "9999-12-31T23:00:00-05:00",
    ])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    assert result.output == "--as-of '9999-12-31T23:00:00-05:00' is out of range: it has no UTC instant\n"
    assert not (tmp_path / "w.duckdb").exists()
