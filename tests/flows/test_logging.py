"""Structured logs: run context on every call line, and no tokens or patient data anywhere."""

from __future__ import annotations

import json
import logging
import logging.config
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prefect.logging.configuration import DEFAULT_LOGGING_SETTINGS_PATH, load_logging_config

from common.clock import SimulatedClock
from common.config import get_settings
from flows.logs import JSON_LOGGING_ENVIRONMENT, JsonLinesFormatter, log_context, redact
from flows.sync import nightly_sync
from sandbox.faults import FaultRule
from sandbox.server import SandboxServer
from tests.flows.conftest import run_async

AS_OF = datetime(2026, 3, 26, 14, 0, tzinfo=UTC)  # Thursday afternoon: the day's bookings exist
JWT = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJpc3MiOiJodHRwczovL3Nsb3RzeW5jIn0."


class _Keep(logging.Handler):
    """Keeps every record twice: as plain text and as the JSON line an operator would get."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.plain = logging.Formatter("%(levelname)s %(name)s %(message)s")
        self.json = JsonLinesFormatter()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.plain.format(record))
        self.lines.append(self.json.format(record))


@pytest.fixture
def every_log_record() -> Iterator[_Keep]:
    """Capture every logger at DEBUG, including those that do not propagate to the root."""
    keep = _Keep()
    loggers = [logging.getLogger()] + [
        logger for logger in logging.root.manager.loggerDict.values() if isinstance(logger, logging.Logger)
    ]
    levels = {logger: logger.level for logger in loggers}
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        if logger is logging.getLogger() or not logger.propagate:
            logger.addHandler(keep)
    try:
        yield keep
    finally:
        for logger, level in levels.items():
            logger.setLevel(level)
            logger.removeHandler(keep)


def test_a_real_sync_logs_context_but_no_tokens_or_patient_data(
    every_log_record: _Keep, capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with SandboxServer(clock=SimulatedClock(AS_OF)) as sandbox:
        registry_path = tmp_path / "registry.yaml"
        sandbox.registry.write(registry_path)
        victim = sandbox.registry.practices[2].ods_code
        sandbox.state.faults.add(FaultRule(practice=victim, kind="status", status=401))
        result: dict[str, Any] = run_async(
            nightly_sync(
                registry_path=str(registry_path),
                warehouse_path=str(tmp_path / "wh.duckdb"),
                data_dir=str(tmp_path),
                as_of=AS_OF,
                horizon_days=7,
            )
        )
        patient_refs = {
            row.patient_ref
            for org in sandbox.registry.booking_organisations
            for row in sandbox.state.booking_log(org.ods_code)
        }
        nhs_numbers = {
            patient.nhs_number
            for practice in sandbox.registry.practices
            for patient in sandbox.state.profile(practice.ods_code).patients
        }
    assert result["booking_logs"]["entries"] and result["booking_logs"]["appointment_reads"]
    assert patient_refs and nhs_numbers

    out, err = capfd.readouterr()
    text = "\n".join([*every_log_record.lines, out, err])
    assert "Bearer" not in text and "eyJ" not in text
    assert not [ref for ref in patient_refs if ref in text]
    assert not set(re.findall(r"(?<!\d)\d{10}(?!\d)", text)) & nhs_numbers
    assert get_settings().patient_hash_key.get_secret_value() not in text

    records = [json.loads(line) for line in every_log_record.lines if line.startswith("{")]
    calls = [r for r in records if r["message"] == "gpconnect call"]
    assert calls and all({"practice_ods", "interaction", "trace_id", "load_id"} <= set(r) for r in calls)
    assert {r["load_id"] for r in calls} == {result["load_id"]}
    assert {r["interaction"] for r in calls} >= {"search free slots", "read appointment"}
    failure = next(r for r in records if r["level"] == "WARNING" and r.get("practice_ods") == victim)
    assert failure["interaction"] == "search free slots" and failure["status"] == 401
    assert failure["load_id"] == result["load_id"] and failure["flow_run_id"]


def test_redaction_and_the_json_line_shape() -> None:
    assert redact(f"Authorization: Bearer {JWT} sent") == "Authorization: [redacted] sent"
    assert redact(f"token={JWT}") == "token=[redacted]"
    assert redact("{'authorization': 'abc.def'}") == "{'authorization': '[redacted]'}"
    record = logging.LogRecord("slotsync.test", logging.INFO, __file__, 1, "sent %s", (JWT,), None)
    record.interaction = "search free slots"
    with log_context(load_id="nightly_sync-x", practice_ods="J82001"):
        line = json.loads(JsonLinesFormatter().format(record))
    assert line["message"] == "sent [redacted]"
    assert (line["load_id"], line["practice_ods"], line["interaction"]) == (
        "nightly_sync-x",
        "J82001",
        "search free slots",
    )


def test_the_json_environment_makes_prefect_log_json_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in JSON_LOGGING_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    config = load_logging_config(DEFAULT_LOGGING_SETTINGS_PATH)
    assert config["handlers"]["console"]["formatter"] == "json"
    formatter = logging.config.DictConfigurator(config).configure_formatter(config["formatters"]["json"])
    assert isinstance(formatter, JsonLinesFormatter)
