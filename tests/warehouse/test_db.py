"""The warehouse connection: memory limits (warehouse/db.py)."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import duckdb
import pytest

from warehouse import db, models


def limit_bytes(con: duckdb.DuckDBPyConnection) -> int:
    return db.size_bytes(str(con.execute("select current_setting('memory_limit')").fetchall()[0][0]))


@pytest.mark.parametrize(("text", "expected"), [
    ("512MB", 512 * 10**6), ("1GB", 10**9), ("953.6 MiB", int(953.6 * 2**20)), ("0 bytes", 0),
    ("2 KiB", 2048),
])
def test_sizes_read_as_settings_and_duckdb_write_them(text: str, expected: int) -> None:
    assert db.size_bytes(text) == expected


def test_a_size_that_is_not_one_is_refused_in_words() -> None:
    with pytest.raises(ValueError, match="not a memory size: 'lots'"):
        db.size_bytes("lots")


def test_the_cap_lowers_the_limit_inside_and_restores_it_after_even_on_error(tmp_path: Path) -> None:
    con = db.open_warehouse(tmp_path / "w.duckdb", memory_limit="1GB")
    try:
        before = limit_bytes(con)
        with db.memory_capped(con, "256MB"):
            assert abs(limit_bytes(con) - 256 * 10**6) < 2**20
        assert abs(limit_bytes(con) - before) < 2**20
        with pytest.raises(RuntimeError), db.memory_capped(con, "256MB"):
            raise RuntimeError("a model failed")
        assert abs(limit_bytes(con) - before) < 2**20
    finally:
        con.close()


def test_the_cap_never_raises_the_writers_limit(tmp_path: Path) -> None:
    con = db.open_warehouse(tmp_path / "w.duckdb", memory_limit="200MB")
    try:
        with db.memory_capped(con, "512MB"):
            assert abs(limit_bytes(con) - 200 * 10**6) < 2**20
        with db.memory_capped(con, None):
            assert abs(limit_bytes(con) - 200 * 10**6) < 2**20
    finally:
        con.close()


def test_the_models_build_under_the_models_limit(tmp_path: Path) -> None:
    con = db.open_warehouse(tmp_path / "w.duckdb", memory_limit="1GB")
    seen: list[int] = []
    real = models.Model.build

    def build(model: models.Model, connection: duckdb.DuckDBPyConnection) -> None:
        seen.append(limit_bytes(connection))
        real(model, connection)

    try:
        with mock.patch.object(models.Model, "build", build):
            models.build_models(con, memory_limit="300MB")
        assert seen and all(abs(b - 300 * 10**6) < 2**20 for b in seen)
        assert abs(limit_bytes(con) - 10**9) < 2**20
    finally:
        con.close()
