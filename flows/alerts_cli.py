"""The `slotsync alerts` commands (registered in `flows/cli.py`): apply the alert automations to a
Prefect server that `slotsync serve` did not start.

Prefect and the alert machinery are imported when the command runs, so other commands start fast.
"""

from __future__ import annotations

import os

import typer

from flows.environment import prepare_prefect_environment


def fail(message: str) -> typer.Exit:
    """A one-line error in red on stderr, and exit code 1."""
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


alerts_app = typer.Typer(help="Operator alerts (Prefect automations).", no_args_is_help=True)


@alerts_app.command("apply")
def alerts_apply() -> None:
    """Create or update the alert automations and destinations on PREFECT_API_URL's server.

    `slotsync serve` does this itself; use this for a Prefect server it did not start.
    Destinations and secrets come from SLOTSYNC_ALERTS__* settings (see the README runbook).
    """
    api_url = os.environ.get("PREFECT_API_URL")
    if not api_url:
        raise fail("PREFECT_API_URL is not set: point it at the Prefect server, e.g. "
                    "http://127.0.0.1:4200/api")
    prepare_prefect_environment(quiet=True)
    import asyncio

    import httpx

    from common.config import get_settings
    from flows.alerts import AlertsError, apply_alerts

    try:
        applied = asyncio.run(apply_alerts(get_settings().alerts, api_url=api_url, progress=typer.echo))
    except AlertsError as exc:
        raise fail(str(exc)) from None
    except httpx.HTTPError as exc:
        raise fail(f"the Prefect API at {api_url} did not answer ({type(exc).__name__}). "
                    "Next step: start the server or fix PREFECT_API_URL") from None
    if not applied.destinations:
        raise typer.Exit(code=1)
