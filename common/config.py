"""The one typed settings object for slotsync.

Values come from environment variables prefixed `SLOTSYNC_` (nested with `__`, e.g.
`SLOTSYNC_HTTP__TIMEOUT_S=20`) or a `.env` file; see `.env.example`. Secrets come only
from there or from a Prefect Secret block (`patient_hash_key_block`, see flows/secrets.py),
never from code or registry files, and are `SecretStr` so they never print in logs or reprs.
Nothing here is read at import time: call `get_settings()`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConsumerIdentity(BaseModel):
    """Who slotsync is on the Spine: the values that go into Ssp-From and the JWT."""

    asid: str = Field(default="200000001115", pattern=r"^\d{12}$")
    ods_code: str = Field(default="X26", description="consumer organisation ODS code")
    organisation_name: str = "slotsync capacity service"
    endpoint_url: str = Field(
        default="https://slotsync.invalid/", description="JWT `iss`: our Spine endpoint URL"
    )
    practitioner_id: str = "slotsync-service-user"
    practitioner_family: str = "Service"
    practitioner_given: str = "Slotsync"
    sds_user_id: str = "UNK"
    sds_role_profile_id: str = "UNK"
    device_model: str = "slotsync"
    device_version: str = "0.1.0"


class HttpSettings(BaseModel):
    """Transport, retry and concurrency limits for GP Connect calls."""

    timeout_s: float = 30.0
    connect_timeout_s: float = 5.0
    max_attempts: int = Field(default=5, ge=1, description="attempts per request, first included")
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    retry_after_cap_s: float = 120.0
    # Wall-clock bounds a slow provider cannot stretch: `timeout_s` restarts with every byte, so
    # a body trickled a byte at a time would otherwise hold the run for as long as it lasts.
    request_deadline_s: float = Field(
        default=60.0, gt=0, description="one request, connect to last body byte, per attempt"
    )
    practice_budget_s: float = Field(
        default=300.0, gt=0, description="all of one practice's slot searches in one run, retries included"
    )
    per_host_concurrency: int = Field(default=8, ge=1)
    overall_concurrency: int = Field(default=32, ge=1)
    max_requests_per_second: float = Field(default=0.0, ge=0, description="0 = no rate cap")
    max_response_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    ssp_prefix: str | None = Field(
        default=None, description="Spine Secure Proxy base, prefixed to every service root"
    )
    client_cert_path: Path | None = None
    client_key_path: Path | None = None
    ca_bundle_path: Path | None = None


# A DuckDB memory size as settings write it (e.g. 512MB, 1GB, 1.5GiB).
MEMORY_SIZE = r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$"


class SyncSettings(BaseModel):
    """How far ahead and in which slices slot capacity is captured."""

    horizon_days: int = Field(default=28, ge=1, le=90)
    window_days: int = Field(default=14, ge=1, le=14)
    intraday_horizon_days: int = Field(default=2, ge=1, le=14)
    # Landing files are the raw archive of slot-search bodies; a completed load's folder is
    # deleted this many days after its observation instant (raw metadata rows stay).
    raw_retention_days: int = Field(default=35, ge=1)
    # Landed practices the writer loads and validates together while fetching goes on
    # (flows/landed_writer.py); fewer than this at the end are loaded with the rest.
    write_batch_practices: int = Field(default=250, ge=1)
    # At most this many Prefect tasks per leg of a run (slot searches; booking-log exports):
    # an estate larger than this shares them out, several practices to a task. Each task run
    # costs the Prefect server three state events; at England's 8,800 tasks its CPU was a
    # third of the night's (BENCHMARKS.md), and Prefect's guidance is a few hundred a night.
    max_tasks_per_leg: int = Field(default=200, ge=1)
    # DuckDB's memory limit for the writer (its default is 80% of RAM, and a night of England
    # then held ~4.8 GiB; with 1 GB it spills to disk, peaked at 1.6 GiB and was no slower).
    writer_memory_limit: str = Field(default="1GB", pattern=MEMORY_SIZE)
    # DuckDB's memory limit while the models build at the end of a night (never above the
    # writer's): their joins otherwise fill the whole writer limit, the night's peak of memory
    # at England's size. Under 512MB a 3,000-practice build took the same time; England's
    # took about 7 s more (22 s to 29 s) for some 300 MiB less at its peak.
    models_memory_limit: str = Field(default="512MB", pattern=MEMORY_SIZE)


class StorageSettings(BaseModel):
    """Permissions of what slotsync writes under `data_dir` (common/files.py).

    The warehouse, the published snapshot and landing NDJSON hold raw provider bodies and
    capacity data: owner-only by default, whatever the process umask. Octal in the
    environment is written as an integer, e.g. `SLOTSYNC_STORAGE__FILE_MODE=416` for 0640.
    """

    dir_mode: int = Field(default=0o700, ge=0o500, le=0o777, description="data folders")
    file_mode: int = Field(default=0o600, ge=0o400, le=0o666, description="data files")


class SandboxSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 0
    seed: int = 20261126


class AlertSettings(BaseModel):
    """Where operator alerts go (flows/alerts.py) and when they fire; secrets never logged.

    A destination is on when its URL (or SMTP host) is set. Each secret comes from the
    environment (`SLOTSYNC_ALERTS__TEAMS_WEBHOOK_URL`, ...) or, when its `*_block` is set, from
    that Prefect Secret block, read when `slotsync serve` / `slotsync alerts apply` runs.
    """

    teams_webhook_url: SecretStr | None = Field(default=None, description="Teams workflow webhook URL")
    teams_webhook_url_block: str | None = None
    slack_webhook_url: SecretStr | None = Field(default=None, description="Slack incoming webhook URL")
    slack_webhook_url_block: str | None = None
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_security: str = Field(default="starttls", pattern=r"^(starttls|ssl|none)$")
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_password_block: str | None = None
    email_from: str = "slotsync@localhost"
    email_to: list[str] = Field(default_factory=list)
    # The nightly runs at 02:00 Europe/London; not Completed by this UK time -> alert.
    nightly_deadline: str = Field(default="07:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    # Seconds from the nightly starting (or going Late) to that alert; None: from the deadline.
    # Set it when the nightly's schedule is not 02:00, or in tests.
    nightly_deadline_after_s: float | None = Field(default=None, ge=10)
    # Where a run's link points (the Prefect UI); default: the API's host without /api.
    ui_url: str | None = None


class DashboardAuthSettings(BaseModel):
    """Sign-in on the dashboard with the organisation's OpenID Connect provider (`st.login`).

    Unset (no `server_metadata_url`): no sign-in, and the dashboard binds 127.0.0.1 only. Set:
    these are written into the app's own `.streamlit/secrets.toml` `[auth]` section at start
    (`dashboards/auth.py`), never committed. A signed-in user is let in only when one of the
    values of the token claim `allow_claim` (a string or a list: ODS organisation codes,
    groups) is in `allow`; an empty `allow` lets nobody in.
    """

    server_metadata_url: str | None = Field(
        default=None, description="the provider's /.well-known/openid-configuration URL"
    )
    client_id: str | None = None
    client_secret: SecretStr | None = None
    redirect_uri: str | None = Field(
        default=None, description="this dashboard's callback, e.g. https://host/oauth2callback"
    )
    cookie_secret: SecretStr | None = Field(
        default=None, description="signs Streamlit's identity cookie; random per start when unset"
    )
    allow_claim: str = Field(default="groups", pattern=r"^[A-Za-z0-9_.:-]+$")
    allow: list[str] = Field(default_factory=list)
    scope: str = "openid profile email"

    @property
    def configured(self) -> bool:
        return bool(self.server_metadata_url)


class ExportAfterPublishSettings(BaseModel):
    """Optional deployment: export the marts after every publish (`slotsync export`, flows/export.py).

    `to` unset: no export. A directory gets `format` files; a postgresql:// URL gets `schema`.
    """

    to: str | None = None
    format: Literal["parquet", "csv", "xlsx"] = "parquet"
    schema_name: str = Field(default="slotsync", pattern=r"^[a-z_][a-z0-9_]{0,62}$")


class Settings(BaseSettings):
    """Everything slotsync can be configured with."""

    model_config = SettingsConfigDict(
        env_prefix="SLOTSYNC_", env_nested_delimiter="__", env_file=".env", extra="ignore"
    )

    data_dir: Path = Path("var")
    warehouse_path: Path | None = None
    registry_path: Path | None = None
    consumer: ConsumerIdentity = ConsumerIdentity()
    http: HttpSettings = HttpSettings()
    sync: SyncSettings = SyncSettings()
    storage: StorageSettings = StorageSettings()
    sandbox: SandboxSettings = SandboxSettings()
    alerts: AlertSettings = AlertSettings()
    # Which statistical disclosure rule every page, CSV download and export applies
    # (dashboards/disclosure.py).
    disclosure_rule: Literal["nhs-1-4", "nhse-1-7-round-5"] = "nhs-1-4"
    dashboard_auth: DashboardAuthSettings = DashboardAuthSettings()
    export_after_publish: ExportAfterPublishSettings = ExportAfterPublishSettings()
    patient_hash_key: SecretStr = Field(
        default=SecretStr("change-me-outside-the-sandbox"),
        description="HMAC key for the keyed hash that stands in for patient references",
    )
    patient_hash_key_block: str | None = Field(
        default=None,
        description="name of a Prefect Secret block holding the HMAC key; when set, it wins over "
        "patient_hash_key (read at run time by flows.secrets, never stored in settings files)",
    )

    @property
    def resolved_warehouse_path(self) -> Path:
        return self.warehouse_path or self.data_dir / "warehouse.duckdb"

    @property
    def landing_dir(self) -> Path:
        return self.data_dir / "landing"

    @property
    def published_dir(self) -> Path:
        return self.data_dir / "published"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
