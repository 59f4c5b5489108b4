"""Sign-in settings without a browser: the allow-list, the secrets file and the loopback default."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from common.config import DashboardAuthSettings, get_settings
from dashboards.auth import claim_values, is_allowed, write_secrets
from flows.cli import app


def test_oidc_allow_list_reads_lists_and_strings() -> None:
    assert claim_values(["QRL", "QWE"]) == {"QRL", "QWE"}
    assert claim_values("QRL, QWE  X1") == {"QRL", "QWE", "X1"}
    assert claim_values(None) == set()
    assert is_allowed(["X99", "QRL"], ["QRL"])
    assert not is_allowed(["X99"], ["QRL"])
    assert not is_allowed(["QRL"], [])  # an empty allow-list lets nobody in
    assert not is_allowed(None, ["QRL"])


def test_oidc_secrets_file_holds_the_auth_section_for_streamlit(tmp_path: Path) -> None:
    auth = DashboardAuthSettings(
        server_metadata_url="https://login.example/.well-known/openid-configuration",
        client_id="dash",
        client_secret=SecretStr('se"cret'),
        allow=["QRL"],
    )
    path = write_secrets(auth, tmp_path / "s", host="127.0.0.1", port=8600)
    section = tomllib.loads(path.read_text())["auth"]
    assert section["redirect_uri"] == "http://127.0.0.1:8600/oauth2callback"
    assert section["client_secret"] == 'se"cret' and section["client_id"] == "dash"
    assert section["client_kwargs"] == {"scope": "openid profile email"}
    assert len(section["cookie_secret"]) >= 32
    assert path.stat().st_mode & 0o077 == 0


def test_oidc_unconfigured_dashboard_binds_loopback_and_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ran: list[list[str]] = []

    def fake_run(command: list[str], **_: Any) -> subprocess.CompletedProcess[bytes]:
        ran.append(command)
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.delenv("SLOTSYNC_DASHBOARD_AUTH__SERVER_METADATA_URL", raising=False)
    get_settings.cache_clear()
    monkeypatch.setattr(subprocess, "run", fake_run)
    result = CliRunner().invoke(app, ["dashboard", "--data-dir", str(tmp_path), "--host", "0.0.0.0"])
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "binding 127.0.0.1 only" in result.output
    command = ran[0]
    assert command[command.index("--server.address") + 1] == "127.0.0.1"
    assert "--secrets.files" not in command
