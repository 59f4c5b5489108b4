"""Parallel cursors on one warehouse connection, for the loader and the fold.

DuckDB runs one statement per connection at a time; independent work (staging models of a
batch, fold groups of practices) runs on several cursors of the same database at once.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TypeVar

import duckdb

# The in-memory database holding a batch while it is loaded (attached for the load only).
LOADER_DB = "slotsync_loader"
_T = TypeVar("_T")
_R = TypeVar("_R")


class CursorPool:
    """Parallel cursors on one warehouse, optionally with the loader's batch database.

    Attaches an in-memory database for the batch tables and opens `threads` cursors on the
    warehouse (connections of the same DuckDB instance), each set to UTC and able to name
    the batch tables unqualified (the staging models read `loader_landed`). `run` spreads
    independent work over the cursors and stops handing out work at the first error.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, threads: int, *, attach: bool = True) -> None:
        self._con = con
        self._threads = max(1, threads)
        self._attach = attach
        self._cursors: list[duckdb.DuckDBPyConnection] = []

    def __enter__(self) -> CursorPool:
        catalog = str(self._con.execute("select current_database()").fetchall()[0][0])
        quoted = '"' + catalog.replace('"', '""') + '"'
        self._search_path = f"{quoted}.main,{LOADER_DB}.main".replace("'", "''")
        if self._attach:
            self._con.execute(f"attach if not exists ':memory:' as {LOADER_DB}")
        try:
            self._cursors = [self._cursor() for _ in range(self._threads)]
        except BaseException:
            self.__exit__()
            raise
        return self

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cursor = self._con.cursor()
        cursor.execute("SET TimeZone = 'UTC'")
        if self._attach:
            cursor.execute(f"SET search_path = '{self._search_path}'")
        return cursor

    @property
    def main(self) -> duckdb.DuckDBPyConnection:
        return self._cursors[0]

    def run(self, work: Callable[[duckdb.DuckDBPyConnection, _T], _R], items: Sequence[_T]) -> list[_R]:
        """`work(cursor, item)` for every item, up to `threads` at once; results in item order."""
        if self._threads == 1 or len(items) <= 1:
            return [work(self.main, item) for item in items]
        free: queue.SimpleQueue[duckdb.DuckDBPyConnection] = queue.SimpleQueue()
        for cursor in self._cursors:
            free.put(cursor)
        failed = threading.Event()

        def one(item: _T) -> _R:
            if failed.is_set():
                raise _Skipped
            cursor = free.get()
            try:
                return work(cursor, item)
            except BaseException:
                failed.set()
                raise
            finally:
                free.put(cursor)

        with ThreadPoolExecutor(len(self._cursors), thread_name_prefix="slotsync-loader") as pool:
            futures = [pool.submit(one, item) for item in items]
            wait(futures)
        errors = [f.exception() for f in futures if f.exception() is not None]
        first = next((e for e in errors if not isinstance(e, _Skipped)), None)
        if first is not None:
            raise first
        return [f.result() for f in futures]

    def __exit__(self, *exc_info: object) -> None:
        for cursor in self._cursors:
            cursor.close()
        self._cursors = []
        if self._attach:
            self._con.execute(f"detach database if exists {LOADER_DB}")


class _Skipped(Exception):
    """Work not started because other work of the same run had failed."""
