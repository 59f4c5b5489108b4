"""Sign-in on the dashboard: Streamlit's built-in OpenID Connect (`st.login`), configured by
slotsync settings (`dashboard_auth`, common/config.py), with an allow-list of organisations or
groups read from the identity token's claims.

Why built-in: `st.login` does the OIDC code flow (Authlib) and keeps the identity in a signed
cookie; slotsync only decides who may see the pages. The provider settings are written into a
secrets file the app is started with (`write_secrets`, called by `slotsync dashboard`), in the
data dir, never in the repository.

Without configuration there is no sign-in, and `slotsync dashboard` binds 127.0.0.1 only and
says so (a reverse proxy with its own sign-in is the other way to share it).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from pathlib import Path

from common.config import DashboardAuthSettings, get_settings

SECRETS_FILE = "secrets.toml"
LOOPBACK = "127.0.0.1"


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def write_secrets(auth: DashboardAuthSettings, directory: Path, *, host: str, port: int) -> Path:
    """The `[auth]` section Streamlit reads, in a file only this user can read."""
    if not (auth.server_metadata_url and auth.client_id):
        raise ValueError("dashboard_auth needs server_metadata_url and client_id for sign-in")
    redirect = auth.redirect_uri or f"http://{host}:{port}/oauth2callback"
    cookie = auth.cookie_secret.get_secret_value() if auth.cookie_secret else secrets.token_urlsafe(32)
    client_secret = auth.client_secret.get_secret_value() if auth.client_secret else ""
    lines = [
        "[auth]",
        f"redirect_uri = {_toml_string(redirect)}",
        f"cookie_secret = {_toml_string(cookie)}",
        f"client_id = {_toml_string(auth.client_id)}",
        f"client_secret = {_toml_string(client_secret)}",
        f"server_metadata_url = {_toml_string(auth.server_metadata_url)}",
        f"client_kwargs = {{ scope = {_toml_string(auth.scope)} }}",
        "",
    ]
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / SECRETS_FILE
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def claim_values(claim: object) -> set[str]:
    """A claim as a set of strings: a list, or one string (space- or comma-separated)."""
    if claim is None:
        return set()
    if isinstance(claim, str):
        return {part for part in claim.replace(",", " ").split() if part}
    if isinstance(claim, Iterable):
        return {str(part) for part in claim}
    return {str(claim)}


def is_allowed(claim: object, allow: Iterable[str]) -> bool:
    return bool(claim_values(claim) & set(allow))


def gate() -> None:
    """Before any page: signed out -> only the sign-in page; not on the allow-list -> refused."""
    import streamlit as st

    auth = get_settings().dashboard_auth
    if not auth.configured:
        return
    user = st.user
    if not user.is_logged_in:
        st.title("slotsync")
        st.markdown(
            "Appointment capacity dashboards for the ICB. **Sign in** with your organisation's account "
            "to see them."
        )
        st.button("Sign in", on_click=st.login, icon=":material/login:", type="primary")
        st.stop()
    who = str(user.get("name") or user.get("email") or user.get("sub") or "this account")
    if not is_allowed(user.get(auth.allow_claim), auth.allow):
        st.title("slotsync")
        st.error(
            f"**Access refused.** You are signed in as {who}, but none of your organisations or groups "
            f"(token claim `{auth.allow_claim}`) is allowed to see these dashboards. Ask the dashboard's "
            "administrator to add your organisation, or sign out and use another account.",
            icon=":material/block:",
        )
        st.button("Sign out", on_click=st.logout, icon=":material/logout:")
        st.stop()
    with st.sidebar:
        st.caption(f":material/account_circle: Signed in as **{who}**")
        st.button("Sign out", on_click=st.logout, icon=":material/logout:", key="slotsync_sign_out")
