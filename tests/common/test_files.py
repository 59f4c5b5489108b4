"""Owner-only files and folders, with the modes configurable through settings (#18)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from common.config import Settings
from common.files import open_private, private_dir, private_file
from connectors.gpconnect.client import SlotSearchResponse
from connectors.gpconnect.windows import SearchWindow
from warehouse.landing import LandedResponse, write_landing_file


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def loose_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_folders_created_are_private_and_an_existing_parent_is_left_alone(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    private_dir(shared / "a" / "b")
    assert mode(shared) == 0o755
    assert mode(shared / "a") == mode(shared / "a" / "b") == 0o700
    private_dir(shared, tighten=True)
    assert mode(shared) == 0o700


def test_files_get_exactly_the_mode_asked_for(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x")
    assert mode(path) == 0o644  # the umask's default
    private_file(path)
    assert mode(path) == 0o600
    os.chmod(path, 0o666)
    os.close(open_private(path))
    assert mode(path) == 0o600 and path.read_bytes() == b""


def test_landing_files_follow_the_configured_modes(tmp_path: Path) -> None:
    window = SearchWindow(datetime(2026, 3, 23, tzinfo=UTC), datetime(2026, 3, 30, tzinfo=UTC))
    response = SlotSearchResponse("A00001", "none", window, datetime(2026, 3, 23, tzinfo=UTC), 200,
                                  "t", b'{"resourceType":"Bundle"}')
    target = tmp_path / "landing" / "load-1" / "A00001.ndjson"
    write_landing_file(target, load_id="load-1", observed_at=window.start_utc,
                       responses=[LandedResponse(response, "general")])
    assert mode(target) == 0o600 and mode(target.parent) == mode(tmp_path / "landing") == 0o700
    other = tmp_path / "landing" / "load-2" / "A00001.ndjson"
    write_landing_file(other, load_id="load-2", observed_at=window.start_utc,
                       responses=[LandedResponse(response, "general")], file_mode=0o640, dir_mode=0o750)
    assert mode(other) == 0o640 and mode(other.parent) == 0o750


def test_modes_are_typed_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().storage.dir_mode == 0o700 and Settings().storage.file_mode == 0o600
    monkeypatch.setenv("SLOTSYNC_STORAGE__FILE_MODE", str(0o640))
    assert Settings().storage.file_mode == 0o640
    monkeypatch.setenv("SLOTSYNC_STORAGE__FILE_MODE", str(0o1777))
    with pytest.raises(ValueError):
        Settings()
