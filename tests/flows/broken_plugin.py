"""A command plugin whose own import is broken (for tests/flows/test_cli_plugins.py)."""

import slotsync_module_that_does_not_exist  # noqa: F401
