"""The `slotsync` command line.

Heavy libraries (Prefect ~3 s, Great Expectations ~5 s, pandas and DuckDB ~1 s, pydantic-settings)
are imported inside the commands that need them, so `slotsync --help` stays instant and the
registry commands load only the registry (tests/flows/test_cli.py checks what they import).
Exit codes: 0 success, 1 a fatal error (bad input, nothing done), 2 a run that completed but
with failed practices.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.metadata import entry_points
from importlib.util import find_spec
from pathlib import Path
from typing import Annotated, Any

import typer

from connectors.referencedata import DEFAULT_CACHE_DIR, DEFAULT_ORD_URL, DEFAULT_SDS_URL
from connectors.registry import (
    EXAMPLE_SERVICE_ROOT_TEMPLATE,
    RegistryError,
    check_service_root_template,
    import_nhs_csv,
    load_registry,
)
from flows.alerts_cli import alerts_app
from flows.environment import prepare_prefect_environment
from flows.export_cli import export_command

app = typer.Typer(
    help="slotsync: keep a true view of GP appointment capacity and give unused NHS 111 slots back.",
    no_args_is_help=True,
    add_completion=False,
)
registry_app = typer.Typer(help="Validate or generate practice registry files.", no_args_is_help=True)
app.add_typer(registry_app, name="registry")

COMMAND_PLUGINS = "slotsync.commands"


def add_plugin_commands(target: typer.Typer) -> list[str]:
    """Add the commands other installed packages declare in the `slotsync.commands` group.

    The lab (`demo`, `bench`, `replay`) and the sandbox (`sandbox`) plug in this way, so the
    product never imports them; where they are not installed (the wheel ships the product
    only) their commands are simply absent. Returns the plugins added.
    """
    added = []
    for plugin in sorted(entry_points(group=COMMAND_PLUGINS), key=lambda ep: ep.name):
        try:
            register = plugin.load()
        except ModuleNotFoundError as exc:
            # Only "that package is not installed" is expected; a plugin's own broken import is not.
            if exc.name is None or plugin.module.split(".")[0] != exc.name.split(".")[0]:
                raise
            continue
        register(target)
        added.append(plugin.name)
    return added


add_plugin_commands(app)

# `slotsync export`: its body lives in flows/export_cli.py.
app.command(name="export")(export_command)
app.add_typer(alerts_app, name="alerts")


def _fail(message: str) -> typer.Exit:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


@app.command()
def sync(
    registry: Annotated[Path, typer.Option(help="practice registry YAML")],
    warehouse: Annotated[Path, typer.Option(help="DuckDB warehouse file")],
    data_dir: Annotated[Path | None, typer.Option(help="landing/published folder root")] = None,
    intraday: Annotated[bool, typer.Option(help="refresh only the next few days")] = False,
    practice: Annotated[list[str] | None, typer.Option(help="only these ODS codes")] = None,
    as_of: Annotated[str | None, typer.Option(help="ISO instant to run as (default: now)")] = None,
) -> None:
    """Run the slot sync once against whatever endpoints the registry names."""
    try:
        loaded = load_registry(registry)
    except RegistryError as exc:
        raise _fail(str(exc)) from None
    _warn_notes(loaded.notes)
    instant = _instant(as_of, "--as-of") if as_of else None
    prepare_prefect_environment()
    import asyncio

    from flows.sync import intraday_sync, nightly_sync

    kwargs: dict[str, Any] = {
        "registry_path": str(registry), "warehouse_path": str(warehouse),
        "data_dir": str(data_dir or warehouse.parent), "as_of": instant, "practices": practice,
    }
    from flows.sync import TooManyPracticesFailed

    try:
        result = asyncio.run(intraday_sync(**kwargs) if intraday else nightly_sync(**kwargs))
    except TooManyPracticesFailed as exc:
        typer.secho(str(exc), fg=typer.colors.YELLOW, err=True)
        for outcome in exc.summary.failed:
            typer.secho(f"  FAILED {outcome.message}", fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(code=2) from None
    failed = [o for o in result["outcomes"] if o["status"] != "ok"]
    typer.echo(
        f"load {result['load_id']}: {len(result['outcomes']) - len(failed)} practice(s) ok, "
        f"{len(failed)} failed, {sum(o['slot_rows'] for o in result['outcomes']):,} slot rows"
    )
    for outcome in failed:
        typer.secho(f"  FAILED {outcome['message']}", fg=typer.colors.YELLOW)
    if failed:
        raise typer.Exit(code=2)


@app.command()
def release(
    registry: Annotated[Path, typer.Option(help="practice registry YAML")] = Path(
        "var/demo/sandbox-registry.yaml"
    ),
    warehouse: Annotated[Path, typer.Option(help="DuckDB warehouse file")] = Path(
        "var/demo/warehouse.duckdb"
    ),
    dry_run: Annotated[bool, typer.Option("--dry-run", help="decide and audit, release nothing")] = False,
    as_of: Annotated[str | None, typer.Option(help="ISO instant to decide at (default: now)")] = None,
    practice: Annotated[list[str] | None, typer.Option(help="only these ODS codes")] = None,
) -> None:
    """Release unused NHS 111 slots now (or, with --dry-run, list what would be released and why)."""
    try:
        load_registry(registry)
    except RegistryError as exc:
        raise _fail(str(exc)) from None
    instant = _instant(as_of, "--as-of") if as_of else None
    prepare_prefect_environment(quiet=True)
    import asyncio

    from flows.release import release_unused_111

    result = asyncio.run(release_unused_111(
        registry_path=str(registry), warehouse_path=str(warehouse), data_dir=str(warehouse.parent),
        as_of=instant, dry_run=dry_run, practices=practice,
    ))
    decisions = result["decisions"]
    verb = "would be released" if dry_run else "decided"
    typer.echo(f"{len(decisions)} NHS 111 slot(s) due for release at {result['as_of']} ({verb}):")
    for d in decisions:
        start = d["slot_start_text"] or d["slot_start_at"]
        typer.echo(f"  {d['practice_ods']} slot {d['slot_id']} at {start} [{d['policy_name']}]"
                   f" -> {d['outcome']}: {d['reason']}")
    if not decisions:
        typer.echo("  nothing is due: no reserved slot still free at the last snapshot is inside "
                   "its release window")


@app.command()
def dashboard(
    data_dir: Annotated[Path, typer.Option(help="data dir whose published/ snapshot to show")] = Path(
        "var/demo"
    ),
    port: Annotated[int, typer.Option(help="port for the dashboard")] = 8501,
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
    now: Annotated[
        str | None,
        typer.Option(help="judge freshness at this ISO instant (the demo's simulated clock)"),
    ] = None,
) -> None:
    """Serve the ICB/sub-ICB dashboard (reads the published marts snapshot only)."""
    spec = find_spec("dashboards.app")
    if spec is None or spec.origin is None:
        raise _fail("dashboards.app is not installed with this package")
    env = {**os.environ, "SLOTSYNC_DATA_DIR": str(data_dir)}
    if now is not None:
        env["SLOTSYNC_NOW"] = _instant(now, "--now").isoformat()
    from common.config import get_settings
    from dashboards.auth import LOOPBACK, write_secrets

    auth = get_settings().dashboard_auth
    extra: list[str] = []
    if auth.configured:
        try:
            secrets_file = write_secrets(auth, data_dir / "dashboard-secrets", host=host, port=port)
        except ValueError as exc:
            raise _fail(str(exc)) from None
        extra = ["--secrets.files", str(secrets_file)]
        allowed = ", ".join(auth.allow) or "nobody (set dashboard_auth.allow)"
        typer.echo(f"sign-in: OpenID Connect; allowed by token claim `{auth.allow_claim}`: {allowed}")
    else:
        if host != LOOPBACK:
            typer.echo(f"no sign-in configured (SLOTSYNC_DASHBOARD_AUTH__*): ignoring --host {host}")
        host = LOOPBACK
        typer.echo("no sign-in configured: binding 127.0.0.1 only (configure dashboard_auth to share it)")
    command = [
        sys.executable, "-m", "streamlit", "run", spec.origin, "--server.headless", "true",
        "--server.address", host, "--server.port", str(port),
        "--browser.gatherUsageStats", "false", *extra,
    ]
    typer.echo(f"dashboard on http://{host}:{port} (Ctrl-C to stop)")
    with contextlib.suppress(KeyboardInterrupt):
        subprocess.run(command, env=env, check=False)


@app.command()
def validate(
    warehouse: Annotated[Path | None, typer.Option(help="DuckDB warehouse (default: settings)")] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="data folder for Data Docs and the published snapshot")
    ] = None,
) -> None:
    """Validate batches still pending, then list quarantined batches; exit 2 if any is open.

    Validation normally runs inside every sync; this catches up on a load that died before its
    validation (then rebuilds and republishes the marts) and reports what is held back:
    practice, load, the expectations it failed and what to do. Data Docs are rebuilt in
    DATA_DIR/quality/data_docs/.
    """
    from common.config import get_settings

    settings = get_settings()
    path = warehouse or settings.resolved_warehouse_path
    if not path.exists():
        raise _fail(f"no warehouse at {path}: run a sync first, or pass --warehouse")
    folder = data_dir or (warehouse.parent if warehouse else settings.data_dir)
    import duckdb

    from flows.validate import run_validation
    from warehouse.quality import summary_lines
    from warehouse.quality_suites import data_docs_dir

    try:
        report, quarantined = run_validation(path, folder)
    except duckdb.IOException as exc:
        raise _fail(f"{path} is busy (a sync is writing it?): {exc}. Try again once it finishes") from None
    for line in summary_lines(quarantined, validated=len(report.batches)):
        typer.secho(line, fg=typer.colors.YELLOW if quarantined else None)
    typer.echo(f"Data Docs: {data_docs_dir(folder) / 'index.html'}")
    if quarantined:
        raise typer.Exit(code=2)


@registry_app.command("validate")
def registry_validate(path: Path) -> None:
    """Check a registry file and list every problem with its row and field."""
    try:
        registry = load_registry(path)
    except RegistryError as exc:
        raise _fail(str(exc)) from None
    _warn_notes(registry.notes)
    kinds = {k: sum(1 for p in registry.practices if p.kind == k) for k in ("practice", "hub")}
    typer.echo(f"{path}: {kinds['practice']} practices and {kinds['hub']} hubs, all valid")


@registry_app.command("from-csv")
def registry_from_csv(
    csv_path: Path,
    output: Annotated[Path, typer.Option("--output", "-o", help="registry YAML to write")],
    service_root_template: Annotated[
        str, typer.Option(help="service root with {ods}, e.g. https://host/{ods}/STU3/1/gpconnect")
    ],
    nhs111_provider: Annotated[str | None, typer.Option(help="111 provider ODS for all rows")] = None,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="import the good rows and report the skipped ones")
    ] = False,
    provider_mapping: Annotated[
        Path | None, typer.Option(help="111 provider name -> ODS code YAML (default: the shipped one)")
    ] = None,
) -> None:
    """Generate a registry from an NHS Digital practice list CSV (e.g. the 111 workbook)."""
    from connectors.referencedata.sources import DEFAULT_PROVIDER_MAPPING, ProviderMapping, SourceError

    if problem := check_service_root_template(service_root_template):  # one line, before reading
        raise _fail(f"--service-root-template {problem.removeprefix('service root template ')}. "
                    f"Next step: pass a template like {EXAMPLE_SERVICE_ROOT_TEMPLATE}")
    try:
        providers = ProviderMapping.load(provider_mapping or DEFAULT_PROVIDER_MAPPING)
        imported = import_nhs_csv(
            csv_path.read_text(encoding="utf-8-sig"), source=str(csv_path),
            service_root_template=service_root_template, nhs111_provider_ods=nhs111_provider,
            skip_invalid=skip_invalid, provider_ods_by_name=providers.by_name,
        )
    except (RegistryError, OSError, SourceError, UnicodeDecodeError) as exc:
        raise _fail(str(exc)) from None
    imported.registry.write(output)
    for row in imported.skipped:
        typer.secho(f"  skipped {row}", fg=typer.colors.YELLOW, err=True)
    typer.echo(f"wrote {len(imported.registry.practices)} practices to {output}"
               + (f"; skipped {len(imported.skipped)} of {imported.rows_read} rows"
                  if imported.skipped else ""))


@registry_app.command("build")
def registry_build(
    output: Annotated[Path, typer.Option("--output", "-o", help="registry YAML to write")],
    icb: Annotated[str | None, typer.Option(help="ICB ODS code, e.g. QRL")] = None,
    sub_icb: Annotated[str | None, typer.Option(help="sub-ICB location code, e.g. 10K")] = None,
    practices: Annotated[str | None, typer.Option(help="comma-separated practice ODS codes")] = None,
    ord_url: Annotated[str, typer.Option(help="ODS ORD API base ('off' = not used)")] = DEFAULT_ORD_URL,
    sds_url: Annotated[str, typer.Option(help="SDS FHIR API base ('off' = not used)")] = DEFAULT_SDS_URL,
    list_sizes: Annotated[str | None, typer.Option(help="GP list-size CSV path/URL")] = None,
    nhs111_csv: Annotated[str | None, typer.Option(help="111 direct-booking workbook CSV path/URL")] = None,
    hubs: Annotated[Path | None, typer.Option(help="the ICB's extended-access hub YAML")] = None,
    provider_mapping: Annotated[Path | None, typer.Option(help="111 provider name -> ODS code YAML")] = None,
    previous: Annotated[Path | None, typer.Option(help="registry to diff against")] = None,
    cache_dir: Annotated[
        Path, typer.Option(help="where reference-data answers are cached")
    ] = DEFAULT_CACHE_DIR,
    offline: Annotated[bool, typer.Option(help="use only cached answers")] = False,
) -> None:
    """Build a registry from ODS ORD, SDS, list sizes, 111 status and the hub file."""
    from connectors.referencedata.runner import BuildFailed, build_options, run_build

    try:
        options = build_options(
            output=output, icb=icb, sub_icb=sub_icb,
            practices=tuple(practices.split(",")) if practices else (), ord_url=ord_url, sds_url=sds_url,
            list_sizes=list_sizes, nhs111_csv=nhs111_csv, hubs=hubs, provider_mapping=provider_mapping,
            previous=previous, cache_dir=cache_dir, offline=offline,
        )
        outcome = run_build(options)
    except BuildFailed as exc:
        raise _fail(f"registry build: {exc}") from None
    result = outcome.result
    for line in (*result.notes, *(f"stale: {s}" for s in result.stale)):
        typer.echo(f"  note: {line}")
    for finding in result.findings:
        typer.secho(f"  finding: {finding}", fg=typer.colors.YELLOW)
    report = result.report()
    typer.echo(f"wrote {report['practices']} practices and {report['hubs']} hubs for "
               f"{options.scope.describe()} to {output}; {len(result.findings)} finding(s) in "
               f"{outcome.report_path}")
    if outcome.diff is not None:
        diff = outcome.diff
        typer.echo(f"changes since the previous registry: {len(diff['opened'])} opened, "
                   f"{len(diff['closed'])} closed, {len(diff['merged'])} merged, "
                   f"{len(diff['changed'])} field change(s) "
                   f"in {outcome.diff_path}")


windows_app = typer.Typer(help="Inspect or reset a practice's sync window state.", no_args_is_help=True)
app.add_typer(windows_app, name="windows")


@app.command()
def serve(
    registry: Annotated[Path, typer.Option(help="practice registry YAML the scheduled runs sync")],
    data_dir: Annotated[
        Path | None, typer.Option(help="landing/published folder root (default: settings)")
    ] = None,
    warehouse: Annotated[
        Path | None, typer.Option(help="DuckDB warehouse (default: <data-dir>/warehouse.duckdb)")
    ] = None,
    host: Annotated[str, typer.Option(help="interface of the local Prefect server")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port of the local Prefect server")] = 4200,
    worker_limit: Annotated[int, typer.Option(min=1, help="flow runs this machine runs at once")] = 2,
    ui: Annotated[bool, typer.Option(help="also serve the Prefect UI")] = False,
    log_format: Annotated[str, typer.Option(help="text | json (one JSON object per line)")] = "text",
    startup_timeout: Annotated[float, typer.Option(help="seconds to wait for server and worker")] = 240.0,
    database: Annotated[
        str | None,
        typer.Option(help="Prefect server database URL, e.g. postgresql+asyncpg://user:pw@host/db "
                          "(default: PREFECT_API_DATABASE_CONNECTION_URL, else SQLite)"),
    ] = None,
) -> None:
    """Run slotsync on its schedules: Prefect server, pool, deployments, alerts, worker (Ctrl-C stops)."""
    try:
        load_registry(registry)
    except RegistryError as exc:
        raise _fail(str(exc)) from None
    if log_format not in ("text", "json"):
        raise _fail("--log-format must be text or json")
    if log_format == "json":
        from flows.logs import JSON_LOGGING_ENVIRONMENT

        # Before Prefect is imported: it reads its logging settings once, and children inherit them.
        os.environ.update(JSON_LOGGING_ENVIRONMENT)
    prepare_prefect_environment()
    from common.config import get_settings
    from flows.serve import ServeConfig, ServeError, SlotsyncStack

    if database is not None and not database.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
        raise _fail("--database must be a postgresql+asyncpg:// (or sqlite+aiosqlite://) URL")
    progress: Callable[[str], None] = typer.echo
    if log_format == "json":
        from flows.logs import json_line

        # Lifecycle lines always print, like the text ones, whatever the logging level.
        def progress(message: str) -> None:
            typer.echo(json_line("slotsync.serve", message))
    settings = get_settings()
    config = ServeConfig(
        registry_path=registry, data_dir=data_dir or settings.data_dir,
        warehouse_path=warehouse or settings.warehouse_path, host=host, port=port,
        worker_limit=worker_limit, ui=ui, startup_timeout_s=startup_timeout,
        database_url=database, alerts=settings.alerts,
    )
    # SIGTERM (systemd, docker stop) stops everything exactly like Ctrl-C.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with SlotsyncStack(config, progress=progress) as stack:
            progress(f"slotsync is serving; Prefect API {stack.api_url}")
            stack.wait()
    except KeyboardInterrupt:
        progress("stopped: worker and server are down; deployments stay active")
    except ServeError as exc:
        raise _fail(str(exc)) from None


@app.command()
def rerun(
    flow_run_id: Annotated[str, typer.Argument(help="a nightly_sync, intraday_sync or backfill run")],
    wait: Annotated[bool, typer.Option(help="wait for the re-run to finish")] = True,
    timeout: Annotated[float, typer.Option(help="seconds to wait for it")] = 3600.0,
) -> None:
    """Re-run only what failed in a run: same as-of instant, only units not yet complete."""
    prepare_prefect_environment()
    import asyncio

    from flows.deployments import rerun_flow_run
    from flows.operations import WarehouseUnavailable, find_load, open_for_reading, practice_runs
    from flows.run_context import settings_for

    try:
        result = asyncio.run(rerun_flow_run(flow_run_id, wait=wait, timeout_s=timeout))
    except LookupError as exc:
        raise _fail(str(exc)) from None
    how = "through its deployment" if result.deployment_id else "in this process"
    typer.echo(f"re-run {result.flow_run_id} of {result.flow_name} run {flow_run_id} ({how})")
    if result.state_type not in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
        typer.echo(f"{'not waiting' if result.state_type is None else 'still running after --timeout'}; "
                   f"follow it with: prefect flow-run inspect {result.flow_run_id}")
        return
    typer.echo(f"finished {result.state_type}{': ' + result.message if result.message else ''}")
    settings = settings_for(result.parameters.get("warehouse_path"), result.parameters.get("data_dir"))
    try:
        con = open_for_reading(settings.resolved_warehouse_path)
    except WarehouseUnavailable as exc:
        raise _fail(str(exc)) from None
    try:
        load = find_load(con, result.flow_run_id)
        rows = practice_runs(con, load.load_id) if load else []
    finally:
        con.close()
    # Practices found complete are recorded ok with no responses: count them, list the rest.
    fetched = [row for row in rows if row.status != "ok" or row.responses]
    typer.echo(f"{len(fetched)} practice(s) fetched again, {len(rows) - len(fetched)} already complete")
    for row in fetched:
        if row.status == "ok":
            typer.echo(f"  {row.practice_ods} ok: {row.responses} response(s), {row.slot_rows:,} slot rows")
        else:
            typer.secho(f"  {row.practice_ods} FAILED: {row.message}", fg=typer.colors.YELLOW)
    if result.state_type != "COMPLETED":
        raise typer.Exit(code=1)
    if any(row.status != "ok" for row in rows):
        raise typer.Exit(code=2)


@app.command()
def status(
    warehouse: Annotated[Path | None, typer.Option(help="DuckDB warehouse (default: settings)")] = None,
    stale_after_hours: Annotated[
        float, typer.Option(min=1, help="stale when the last successful nightly is older")
    ] = 26.0,
    show_all: Annotated[bool, typer.Option("--all", help="list every practice, not only problems")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per practice")] = False,
    as_of: Annotated[str | None, typer.Option(help="judge freshness at this ISO instant")] = None,
    check: Annotated[bool, typer.Option(help="exit 2 when a practice is stale or failing or a load "
                                        "was left running by a dead process")] = False,
) -> None:
    """Per practice: last successful sync, freshness, open failures with their next step, NHS 111 drift.

    "never synced" (no successful sync at all) is told apart from "stale" (an old one). --json
    prints one object per practice: ISO-8601 instants, ages in seconds, the supplier's own
    error text beside our error class, and any open NHS 111 drift finding.
    """
    import json
    from datetime import timedelta

    import duckdb

    from flows.drift import open_drift
    from flows.operations import (
        WarehouseUnavailable,
        freshness_counts,
        open_for_reading,
        practice_status,
        running_loads,
        status_json,
        status_report,
    )

    now = _instant(as_of, "--as-of") if as_of else datetime.now(UTC)
    stale_after = timedelta(hours=stale_after_hours)
    try:
        con = open_for_reading(_warehouse_path(warehouse))
    except WarehouseUnavailable as exc:
        raise _fail(str(exc)) from None
    try:
        statuses = practice_status(con, now=now, stale_after=stale_after)
        counts = freshness_counts(con, now=now, stale_after=stale_after)
        drift = {d.finding.practice_ods: d for d in open_drift(con)}
        loads = running_loads(con)
    except duckdb.CatalogException:
        raise _fail(f"{_warehouse_path(warehouse)} has no slotsync tables yet. Next step: run a sync "
                    "(slotsync sync, or wait for the nightly)") from None
    finally:
        con.close()
    if as_json:
        for entry in statuses:
            record = status_json(entry, now=now)
            found = drift.get(entry.practice_ods)
            record["nhs111_drift"] = found.as_json() if found else None
            typer.echo(json.dumps(record))
    else:
        for text in status_report(statuses, counts, stale_after=stale_after, show_all=show_all):
            typer.echo(text)
        for found in drift.values():
            f = found.finding
            typer.secho(f"NHS 111 DRIFT {f.practice_ods} ({f.kind}) since {f.since:%Y-%m-%d %H:%M} UTC",
                        fg=typer.colors.YELLOW)
            typer.echo(f"  evidence: {f.evidence}")
            typer.echo(f"  likely cause: {f.likely_cause}")
            typer.echo(f"  who fixes it: {f.who_fixes}")
    for load in loads:  # stderr under --json: stdout stays one object per practice
        typer.secho(load.line(), fg=typer.colors.RED if load.left_running else None, err=as_json)
    if check and (any(s.needs_attention for s in statuses) or drift or any(x.left_running for x in loads)):
        raise typer.Exit(code=2)


@windows_app.command("show")
def windows_show(
    practice: Annotated[str, typer.Option(help="ODS code of the practice or hub")],
    warehouse: Annotated[Path | None, typer.Option(help="DuckDB warehouse (default: settings)")] = None,
    limit: Annotated[int, typer.Option(min=1, help="observations to list, newest first")] = 20,
) -> None:
    """List a practice's completed window units, one line per observation."""
    from flows.operations import WarehouseUnavailable, open_for_reading, window_observations

    try:
        con = open_for_reading(_warehouse_path(warehouse))
    except WarehouseUnavailable as exc:
        raise _fail(str(exc)) from None
    try:
        observations = window_observations(con, practice, limit=limit)
    finally:
        con.close()
    if not observations:
        raise _fail(f"practice {practice} has no completed windows (check the ODS code)")
    typer.echo(f"{'observed at (UTC)':<19} {'stream':<14} {'windows':>7} {'filters':>7} {'units':>5} "
               f"{'rows':>8}  covers (UTC)                         loads")
    for o in observations:
        typer.echo(
            f"{o.observed_at:%Y-%m-%d %H:%M:%S} {o.stream:<14} {o.windows:>7} {o.filters:>7} {o.units:>5} "
            f"{o.rows_loaded:>8,}  {o.covers_from:%Y-%m-%d %H:%M} .. {o.covers_to:%Y-%m-%d %H:%M}  "
            f"{o.load_ids}"
        )


@windows_app.command("reset")
def windows_reset(
    practice: Annotated[str, typer.Option(help="ODS code of the practice or hub")],
    warehouse: Annotated[Path | None, typer.Option(help="DuckDB warehouse (default: settings)")] = None,
    stream: Annotated[str, typer.Option(help="slots | slots_backfill | all")] = "slots",
    yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
) -> None:
    """Delete a practice's completed-window state (after saying exactly what goes)."""
    from flows.operations import STREAMS, preview_reset, reset_windows
    from warehouse.db import open_warehouse

    if stream != "all" and stream not in STREAMS:
        raise _fail(f"--stream must be one of: {', '.join(STREAMS)}, all")
    streams = STREAMS if stream == "all" else (stream,)
    path = _warehouse_path(warehouse)
    if not path.exists():
        raise _fail(f"no warehouse at {path}")
    con = open_warehouse(path)
    try:
        preview = preview_reset(con, practice, streams)
        if preview.units == 0:
            typer.echo(f"practice {practice} has no window state in {', '.join(streams)}: nothing to reset")
            return
        typer.echo(
            f"This deletes {preview.units} completed window unit(s) of practice {practice} "
            f"({preview.observations} observation(s), {preview.first_observed_at:%Y-%m-%d %H:%M} to "
            f"{preview.last_observed_at:%Y-%m-%d %H:%M} UTC, stream {', '.join(streams)}) from "
            "meta.sync_window.\nRaw responses and staging rows are kept. The marts stop using these "
            "observations at the next load, `slotsync status` no longer counts them as syncs, and "
            "a re-run of their loads fetches them again."
        )
        if not yes:
            typer.confirm("Delete them?", abort=True)
        deleted = reset_windows(con, practice, streams)
    finally:
        con.close()
    typer.echo(f"deleted {deleted} window unit(s) of practice {practice}")


def _warehouse_path(warehouse: Path | None) -> Path:
    from common.config import get_settings

    return warehouse or get_settings().resolved_warehouse_path


def _warn_notes(notes: tuple[str, ...]) -> None:
    """Registry warnings (deprecations, a service root naming another practice) on stderr."""
    for note in notes:
        typer.secho(f"warning: {note}", fg=typer.colors.YELLOW, err=True)


def _instant(text: str, option: str) -> datetime:
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        raise _fail(f"{option} {text!r} is not an ISO instant like 2026-03-29T02:00:00+01:00") from None
    if instant.tzinfo is None:
        raise _fail(f"{option} needs an offset, e.g. 2026-03-29T02:00:00+01:00")
    try:
        instant.astimezone(UTC)  # 9999-12-31T23:00-05:00 has no UTC instant
    except OverflowError:
        raise _fail(f"{option} {text!r} is out of range: it has no UTC instant") from None
    return instant


def main() -> None:
    app()


if __name__ == "__main__":
    main()
