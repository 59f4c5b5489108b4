"""The `slotsync export` command (registered in `flows/cli.py`): options, checks, one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dashboards.disclosure import UnknownRuleError, active_rule, rule_named
from flows.export import FORMATS, Cut, ExportError, collect, parse_day, write_files
from flows.export_postgres import is_postgres_url, write_postgres


def export_command(
    to: Annotated[str, typer.Option("--to", help="output directory, or a postgresql:// URL")],
    data_dir: Annotated[Path, typer.Option(help="data dir whose published/ snapshot to export")] = Path(
        "var/demo"
    ),
    fmt: Annotated[
        str, typer.Option("--format", help="parquet | csv | xlsx (ignored for a PostgreSQL URL)")
    ] = "parquet",
    since: Annotated[str | None, typer.Option(help="first UK day (YYYY-MM-DD); default: the first")] = None,
    until: Annotated[str | None, typer.Option(help="last UK day (YYYY-MM-DD); default: the last")] = None,
    icb: Annotated[list[str] | None, typer.Option("--icb", help="ICB ODS code (repeatable)")] = None,
    sub_icb: Annotated[
        list[str] | None, typer.Option("--sub-icb", help="sub-ICB location (former CCG) code (repeatable)")
    ] = None,
    pcn: Annotated[list[str] | None, typer.Option("--pcn", help="PCN code (repeatable)")] = None,
    registry: Annotated[
        Path | None,
        typer.Option(help="practice registry for --icb (default: DATA_DIR/sandbox-registry.yaml)"),
    ] = None,
    schema: Annotated[str, typer.Option(help="PostgreSQL schema to replace")] = "slotsync",
    rule: Annotated[
        str | None, typer.Option(help="disclosure rule (default: the disclosure_rule setting)")
    ] = None,
) -> None:
    """Export every published mart, suppressed as the dashboard shows it, for the ICB's own tools."""
    try:
        chosen = rule_named(rule) if rule else active_rule()
        cut = Cut(
            since=parse_day(since, "--since"),
            until=parse_day(until, "--until"),
            icb=tuple(icb or ()),
            sub_icb=tuple(sub_icb or ()),
            pcn=tuple(pcn or ()),
        )
        if not is_postgres_url(to) and fmt not in FORMATS:
            raise ExportError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        exported = collect(data_dir, cut, chosen, registry=registry)
        if is_postgres_url(to):
            tables = write_postgres(exported, to, schema)
            where = f"schema {schema} of the PostgreSQL database"
            count = len(tables)
        else:
            written = write_files(exported, Path(to), fmt)
            where = str(to)
            count = len(exported.tables)
    except (ExportError, UnknownRuleError) as exc:
        typer.secho(f"slotsync export: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from None
    typer.echo(
        f"exported {count} marts of load {exported.load_id} ({exported.first_day} to {exported.last_day}; "
        f"filters: {exported.filters}; disclosure rule {chosen.name}) to {where}"
    )
    if not is_postgres_url(to):
        typer.echo(f"  {len(written)} files, data dictionary in {Path(to) / 'dictionary.md'}")
