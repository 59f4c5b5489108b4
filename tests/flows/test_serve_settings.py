"""The Prefect server `slotsync serve` starts writes task runs and events in batches.

flows/serve.py passes SERVER_SETTINGS to the server as environment variables; a misspelt name
would be ignored by Prefect without a word, and the server would drop events under an England
night again (tests/flows/test_serve_postgres.py measures that end to end). Here Prefect's own
settings model reads the environment serve builds.
"""

from __future__ import annotations

import os

import pytest
from prefect.settings import Settings

from flows.serve import SERVER_SETTINGS, server_environment


def prefect_settings_under(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in [n for n in os.environ if n.startswith("PREFECT_SERVER_SERVICES_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        if name.startswith("PREFECT_"):
            monkeypatch.setenv(name, value)
    return Settings()


def test_serve_starts_the_server_with_batched_task_run_recorder_and_event_persister(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = server_environment({"PATH": "/usr/bin"}, ui=False)
    services = prefect_settings_under(env, monkeypatch).server.services
    assert services.task_run_recorder.batch_size == 500
    assert services.task_run_recorder.flush_interval == 1
    assert services.event_persister.batch_size == 500
    assert services.event_persister.flush_interval == 1
    assert env["PREFECT_UI_ENABLED"] == "false" and env["PATH"] == "/usr/bin"


def test_serve_settings_give_way_to_the_operators_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    own = {"PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "50"}
    env = server_environment(own, ui=True)
    services = prefect_settings_under(env, monkeypatch).server.services
    assert services.task_run_recorder.batch_size == 50
    assert services.event_persister.batch_size == int(
        SERVER_SETTINGS["PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE"]
    )
    assert env["PREFECT_UI_ENABLED"] == "true"
