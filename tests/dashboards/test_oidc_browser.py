"""Dashboard sign-in (`st.login`) in real headless Chromium against a real OIDC provider on loopback.

The provider is `oidc-provider-mock` (a complete OpenID Connect provider built on Authlib) in a
thread of the test; the dashboard is started by `slotsync dashboard` in its own process with
`SLOTSYNC_DASHBOARD_AUTH__*` settings, as an operator would. Two users: one whose `groups`
claim holds an allowed ICB, one whose does not.

Skipped without /usr/bin/chromium unless SLOTSYNC_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from oidc_provider_mock import User, run_server_in_thread
from playwright.sync_api import Page, expect

from tests.dashboards.conftest import PROJECT_ROOT, Snapshot, _free_port, _wait_healthy

pytestmark = pytest.mark.browser

TIMEOUT_MS = 30_000
ALLOWED = User(sub="alice", claims={"name": "Alice Analyst", "email": "alice@icb.example", "groups": ["QRL"]})
OUTSIDER = User(sub="mallory", claims={"name": "Mallory Outsider", "groups": ["X99", "Y88"]})


@dataclass(frozen=True)
class SignedApp:
    url: str
    provider: str
    log: Path


@pytest.fixture(scope="module")
def oidc_app(small_snapshot: Snapshot, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SignedApp]:
    root = tmp_path_factory.mktemp("oidc")
    with run_server_in_thread(port=0, user_claims=[ALLOWED, OUTSIDER]) as provider:
        issuer = f"http://localhost:{provider.server_port}"
        port = _free_port()
        env = {
            **os.environ,
            "SLOTSYNC_DASHBOARD_AUTH__SERVER_METADATA_URL": f"{issuer}/.well-known/openid-configuration",
            "SLOTSYNC_DASHBOARD_AUTH__CLIENT_ID": "slotsync-dashboard",
            "SLOTSYNC_DASHBOARD_AUTH__CLIENT_SECRET": "test-only-secret",
            "SLOTSYNC_DASHBOARD_AUTH__ALLOW_CLAIM": "groups",
            "SLOTSYNC_DASHBOARD_AUTH__ALLOW": '["QRL", "QWE"]',
        }
        env.pop("SLOTSYNC_NOW", None)
        data_dir = root / "data"
        (data_dir / "published").mkdir(parents=True)
        (data_dir / "published" / "dashboard.duckdb").write_bytes(small_snapshot.marts.read_bytes())
        command = [
            sys.executable,
            "-m",
            "flows.cli",
            "dashboard",
            "--data-dir",
            str(data_dir),
            "--port",
            str(port),
        ]
        log = root / "dashboard.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            try:
                _wait_healthy(url, proc)
            except RuntimeError as exc:
                pytest.fail(f"{exc}; log:\n{log.read_text(errors='replace')}")
            yield SignedApp(url, issuer, log)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    secrets = data_dir / "dashboard-secrets" / "secrets.toml"
    assert secrets.stat().st_mode & 0o077 == 0  # only the operator can read the client secret


def _sign_in(page: Page, app: SignedApp, sub: str) -> None:
    page.goto(app.url)
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=TIMEOUT_MS)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{app.provider}/**", timeout=TIMEOUT_MS)
    page.locator("input[name='sub']").fill(sub)
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(f"{app.url}/**", timeout=TIMEOUT_MS)


def test_oidc_signed_out_sees_only_the_sign_in_page(page: Page, oidc_app: SignedApp) -> None:
    page.goto(oidc_app.url)
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_text("Sign in with your organisation's account")).to_be_visible()
    # No page, no navigation, no figure: the gate stops before any data is read.
    expect(page.get_by_role("heading", name="Overview")).to_have_count(0)
    expect(page.get_by_test_id("stSidebarNav")).to_have_count(0)
    expect(page.get_by_test_id("stMetric")).to_have_count(0)
    page.goto(f"{oidc_app.url}/nhs111")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_role("heading", name="NHS 111 slots vs quota")).to_have_count(0)


def test_oidc_user_outside_the_allow_list_is_refused(page: Page, oidc_app: SignedApp) -> None:
    _sign_in(page, oidc_app, OUTSIDER.sub)
    expect(page.get_by_text("Access refused.")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_text("Mallory Outsider")).to_be_visible()
    expect(page.get_by_role("heading", name="Overview")).to_have_count(0)
    expect(page.get_by_test_id("stMetric")).to_have_count(0)


def test_oidc_allowed_user_sees_the_pages_and_can_sign_out(page: Page, oidc_app: SignedApp) -> None:
    _sign_in(page, oidc_app, ALLOWED.sub)
    expect(page.get_by_role("heading", name="Overview")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_text("Signed in as")).to_be_visible()
    expect(page.get_by_text("disclosure rule")).to_be_visible()
    page.goto(f"{oidc_app.url}/nhs111")
    expect(page.get_by_role("heading", name="NHS 111 slots vs quota")).to_be_visible(timeout=TIMEOUT_MS)
    page.get_by_role("button", name="Sign out").click()
    # Streamlit ends the session at the provider too (RP-initiated logout), then comes back.
    page.wait_for_url(f"{oidc_app.provider}/**", timeout=TIMEOUT_MS)
    page.get_by_role("button", name="End session").click()
    page.wait_for_url(f"{oidc_app.url}/**", timeout=TIMEOUT_MS)
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=TIMEOUT_MS)
    page.goto(f"{oidc_app.url}/nhs111")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_role("heading", name="NHS 111 slots vs quota")).to_have_count(0)
