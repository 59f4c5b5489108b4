"""The lab's and sandbox's commands reach `slotsync` through the `slotsync.commands` entry points.

The product CLI never imports them; these tests pin down that discovery: the declared plugins
add their commands, a plugin whose package is not installed is skipped, and a plugin that is
installed but broken still fails loudly.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest
import typer

from flows import cli


def _names(app: typer.Typer) -> set[str]:
    return {
        command.name or command.callback.__name__
        for command in app.registered_commands
        if command.callback is not None
    }


def test_declared_plugins_add_the_lab_and_sandbox_commands() -> None:
    app = typer.Typer()
    assert cli.add_plugin_commands(app) == ["lab", "sandbox"]
    assert _names(app) == {"demo", "bench", "replay", "sandbox"}
    assert {"demo", "bench", "replay", "sandbox"} <= _names(cli.app)


def test_a_plugin_that_is_not_installed_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    absent = EntryPoint(name="lab", value="slotsync_absent_lab.commands:register", group=cli.COMMAND_PLUGINS)
    monkeypatch.setattr(cli, "entry_points", lambda group: [absent])
    app = typer.Typer()
    assert cli.add_plugin_commands(app) == []
    assert _names(app) == set()


def test_a_broken_plugin_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    # The plugin's own package exists; what it imports does not: a bug, not an absent plugin.
    broken = EntryPoint(name="broken", value="tests.flows.broken_plugin:register", group=cli.COMMAND_PLUGINS)
    monkeypatch.setattr(cli, "entry_points", lambda group: [broken])
    with pytest.raises(ModuleNotFoundError):
        cli.add_plugin_commands(typer.Typer())
