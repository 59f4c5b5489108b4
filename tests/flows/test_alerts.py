"""Operator alerts end to end with real parts on loopback.

`slotsync serve` runs as a subprocess (Prefect server on SQLite in a temporary PREFECT_HOME,
work pool, deployments, alert automations, process worker) with its alerts pointed at a tiny
threaded HTTP receiver standing in for Slack and Teams, and an aiosmtpd SMTP sink for e-mail.
The sandbox serves GP Connect over HTTP. The tests share one stack (module fixture) and run
in file order: a nightly that fails delivers one message per destination naming the practice
and the exact rerun command; a practice whose 111 reservations are switched off raises one
drift message, and none the next night; a nightly that never runs raises the deadline alert.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from prefect import get_client
from prefect.client.schemas.actions import WorkPoolUpdate
from prefect.deployments import arun_deployment
from prefect.states import Scheduled

from common.clock import SimulatedClock
from flows.alerts import DRIFT, FAILED_RUN, NIGHTLY_DEADLINE, QUARANTINED
from sandbox.faults import FaultRule
from sandbox.server import SandboxServer
from tests.flows.test_serve import (
    CLI,
    STARTUP_TIMEOUT_S,
    free_port,
    on_server,
    stop_serve,
    wait_until,
)

AS_OF = datetime(2026, 3, 24, 2, 0, tzinfo=UTC)  # Tuesday 02:00 GMT
DEADLINE_AFTER_S = 45  # a 4-practice nightly through the worker takes well under this
DELIVERY_TIMEOUT_S = 180


@dataclass
class Inbox:
    """Everything the fake Slack/Teams receiver and the SMTP sink got."""

    posts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    mails: list[Any] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def texts(self) -> list[tuple[str, str]]:
        """(destination, whole text) of every message so far."""
        with self.lock:
            found = [(path.strip("/"), json.dumps(body)) for path, body in self.posts]
            found += [("email", f"{m['Subject']}\n{m.get_payload()}") for m in self.mails]
        return found

    def clear(self) -> None:
        with self.lock:
            self.posts.clear()
            self.mails.clear()

    def wait_for(self, condition: Callable[[list[tuple[str, str]]], bool],
                 timeout_s: float = DELIVERY_TIMEOUT_S) -> list[tuple[str, str]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition(self.texts()):
                return self.texts()
            time.sleep(1)
        raise AssertionError(f"no such alert within {timeout_s:.0f} s; got {self.texts()}")


def webhook_receiver(inbox: Inbox) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            with inbox.lock:
                inbox.posts.append((self.path, json.loads(body)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


class SmtpSink:
    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.inbox.lock:
            self.inbox.mails.append(message_from_bytes(envelope.content))
        return "250 OK"


@dataclass
class Stack:
    api_url: str
    sandbox: SandboxServer
    clock: SimulatedClock
    inbox: Inbox
    chosen: list[str]
    env: dict[str, str]
    log: Path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("alerts")
    inbox = Inbox()
    receiver = webhook_receiver(inbox)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    smtp_port = free_port()
    smtp = Controller(SmtpSink(inbox), hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    hook = f"http://127.0.0.1:{receiver.server_address[1]}"
    home, port = tmp / "prefect-home", free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "SLOTSYNC_ALERTS"))}
    env.update(
        PREFECT_HOME=str(home), PREFECT_WORKER_QUERY_SECONDS="1",
        SLOTSYNC_ALERTS__SLACK_WEBHOOK_URL=f"{hook}/slack",
        SLOTSYNC_ALERTS__TEAMS_WEBHOOK_URL=f"{hook}/teams",
        SLOTSYNC_ALERTS__SMTP_HOST="127.0.0.1", SLOTSYNC_ALERTS__SMTP_PORT=str(smtp_port),
        SLOTSYNC_ALERTS__SMTP_SECURITY="none", SLOTSYNC_ALERTS__EMAIL_TO='["oncall@example.nhs.uk"]',
        SLOTSYNC_ALERTS__NIGHTLY_DEADLINE_AFTER_S=str(DEADLINE_AFTER_S),
    )
    log = tmp / "serve.log"
    clock = SimulatedClock(AS_OF)
    with SandboxServer(clock=clock) as sandbox:
        registry = tmp / "registry.yaml"
        sandbox.registry.write(registry)
        chosen = [p.ods_code for p in sandbox.registry.practices
                  if p.kind == "practice" and p.accepts_111_booking and p.nhs111_provider_ods][:4]
        with log.open("wb") as output:
            serve = subprocess.Popen(
                [*CLI, "serve", "--registry", str(registry), "--data-dir", str(tmp / "data"),
                 "--port", str(port)],
                stdout=output, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )
        try:
            wait_until(lambda: "slotsync is serving" in log.read_text(), serve, log)
            yield Stack(api_url, sandbox, clock, inbox, chosen, env, log)
        finally:
            stop_serve(serve, home)
            smtp.stop()
            receiver.shutdown()


def run_nightly(stack: Stack, night: int, **parameters: Any) -> Any:
    as_of = AS_OF + timedelta(days=night)
    stack.clock.set(as_of)

    async def nightly() -> Any:
        return await arun_deployment(
            "nightly_sync/nightly", timeout=STARTUP_TIMEOUT_S, poll_interval=1, as_subflow=False,
            parameters={"as_of": as_of.isoformat(), "horizon_days": 7, "practices": stack.chosen,
                        **parameters},
        )

    return on_server(stack.api_url, nightly)


def about(texts: list[tuple[str, str]], words: str) -> list[tuple[str, str]]:
    return [(where, text) for where, text in texts if words in text]


@pytest.mark.slow
def test_alert_failed_nightly_sends_one_message_per_destination_with_practice_and_rerun(
    stack: Stack,
) -> None:
    log = stack.log.read_text()
    for name in (FAILED_RUN, NIGHTLY_DEADLINE, QUARANTINED, DRIFT):
        assert f"alert {name!r} created" in log, log
    # Applying again (a server serve did not start) updates the same automations by name.
    again = subprocess.run([*CLI, "alerts", "apply"], capture_output=True, text=True, timeout=300,
                           env={**stack.env, "PREFECT_API_URL": stack.api_url})
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("updated") == 4 and "created" not in again.stdout
    hook = stack.env["SLOTSYNC_ALERTS__SLACK_WEBHOOK_URL"]
    assert hook not in again.stdout + again.stderr + log, "a webhook URL leaked into the output"

    victim = stack.chosen[1]
    stack.sandbox.state.faults.add(FaultRule(practice=victim, kind="status", status=401))
    try:
        run = run_nightly(stack, 0, max_failed_fraction=0.0)
    finally:
        stack.sandbox.state.faults.clear()
    assert run.state.is_failed(), run.state
    texts = stack.inbox.wait_for(lambda t: len(about(t, "nightly_sync Failed")) >= 3)
    time.sleep(5)  # anything extra would have arrived by now
    failed = about(stack.inbox.texts(), "nightly_sync Failed")
    assert sorted(where for where, _ in failed) == ["email", "slack", "teams"], texts
    for _, text in failed:
        assert victim in text and "ConfigurationError" in text
        assert f"slotsync rerun {run.id}" in text
        assert f"/runs/flow-run/{run.id}" in text
    assert not any(other in failed[0][1] for other in stack.chosen if other != victim)


@pytest.mark.slow
def test_drift_alert_once_per_episode_through_the_real_server(stack: Stack) -> None:
    victim = stack.chosen[2]
    stack.inbox.clear()
    stack.sandbox.state.set_nhs111_reservations(victim, enabled=False)
    assert run_nightly(stack, 1).state.is_completed()
    stack.inbox.wait_for(lambda t: len(about(t, "NHS 111 booking at risk")) >= 3)
    time.sleep(5)
    drift = about(stack.inbox.texts(), "NHS 111 booking at risk")
    assert sorted(where for where, _ in drift) == ["email", "slack", "teams"]
    assert all(victim in text and "Who fixes it: practice" in text for _, text in drift)

    stack.inbox.clear()
    assert run_nightly(stack, 2).state.is_completed()
    time.sleep(15)  # the first night's alert took well under this to arrive
    assert about(stack.inbox.texts(), "NHS 111") == [], "the episode was told again"


@pytest.mark.slow
def test_alert_deadline_fires_when_no_nightly_ran(stack: Stack) -> None:
    async def due_nightly_that_nobody_runs() -> None:
        async with get_client() as client:
            await client.update_work_pool("slotsync", WorkPoolUpdate(is_paused=True))
            deployment = await client.read_deployment_by_name("nightly_sync/nightly")
            await client.create_flow_run_from_deployment(
                deployment.id, state=Scheduled(scheduled_time=datetime.now(UTC) - timedelta(minutes=1)),
            )

    stack.inbox.clear()
    on_server(stack.api_url, due_nightly_that_nobody_runs)
    texts = stack.inbox.wait_for(lambda t: len(about(t, "has not completed by")) >= 3,
                                 timeout_s=DEADLINE_AFTER_S + DELIVERY_TIMEOUT_S)
    deadline = about(texts, "has not completed by")
    assert sorted(where for where, _ in deadline)[:3] == ["email", "slack", "teams"]
    assert all("slotsync status" in text for _, text in deadline)
