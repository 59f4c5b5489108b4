"""Folding complete observations into slot history (`core.fct_slot_history`).

Set-based, once per load, from what is committed: one round per (observed_at, window) over
all the practices that completed it, rounds in observation order. An observation is complete
when every searchFilter the practice needs (core.dim_practice) has a `meta.sync_window` unit
at that instant; otherwise the audience of its slots cannot be told and it waits for a
re-run. Whatever a crash left unfolded is folded by the next load.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import duckdb

from warehouse.cursors import CursorPool
from warehouse.db import sql_text, transaction

# Slot history is folded in groups of practices, each group in its own transaction: at most
# this many practices a group (a whole region is one group), FOLD_THREADS groups at once.
FOLD_GROUP_PRACTICES = 250
FOLD_THREADS = 1


def fold_slot_history(
    con: duckdb.DuckDBPyConnection, threads: int | None = None, practices: Sequence[str] | None = None,
) -> int:
    """Fold every complete, not yet folded observation into core.fct_slot_history.

    With `practices`, only theirs: a night can fold each batch once it is validated, while
    fetching goes on, and leave the end-of-night fold only what is still pending.

    Practices' histories are independent, so they are folded in groups of at most
    FOLD_GROUP_PRACTICES consecutive practices, each group in one transaction (which
    bounds a fold's working set whatever the estate's size), `threads` groups at once;
    a group that fails leaves its observations pending for the next fold. Returns the
    number of (practice, window, observed_at) observations folded.
    """
    pending = [ods for (ods,) in con.execute(
        "select distinct practice_ods from meta.sync_window where folded_at is null "
        "and ($practices is null or practice_ods in (select unnest($practices::varchar[]))) order by 1",
        {"practices": None if practices is None else list(practices)},
    ).fetchall()]
    if not pending:
        return 0
    groups = [pending[i:i + FOLD_GROUP_PRACTICES]
              for i in range(0, len(pending), FOLD_GROUP_PRACTICES)]
    threads = min(threads or FOLD_THREADS, len(groups))
    if threads == 1:
        return sum(_fold_group(con, group) for group in groups)
    with CursorPool(con, threads, attach=False) as pool:
        return sum(pool.run(_fold_group, groups))


def _fold_group(con: duckdb.DuckDBPyConnection, practices: list[str]) -> int:
    with transaction(con):
        return fold_pending(con, practices)


def fold_pending(con: duckdb.DuckDBPyConnection, practices: list[str]) -> int:
    """Fold the pending complete observations of `practices` in the caller's transaction."""
    con.execute(
        f"create or replace temp table fold_pending as {sql_text('load/int_fold_pending.sql')}",
        {"practices": practices},
    )
    try:
        rounds = con.execute(
            "select observed_at, window_start, window_end, count(*) from fold_pending "
            "group by all order by observed_at, window_start, window_end"
        ).fetchall()
        for observed_at, window_start, window_end, _ in rounds:
            con.execute(
                "create or replace temp table fold_round as select practice_ods, load_id "
                "from fold_pending where observed_at = $observed_at "
                "and window_start = $window_start and window_end = $window_end",
                {"observed_at": observed_at, "window_start": window_start, "window_end": window_end},
            )
            _fold_round(con, observed_at=observed_at, window_start=window_start,
                        window_end=window_end)
        con.execute(
            """
            update meta.sync_window as w
            set folded_at = now()
            from fold_pending as p
            where w.practice_ods = p.practice_ods and w.window_start = p.window_start
              and w.window_end = p.window_end and w.observed_at = p.observed_at
              and w.folded_at is null
            """
        )
    finally:
        con.execute("drop table if exists fold_round")
        con.execute("drop table if exists fold_pending")
    return sum(int(n) for *_, n in rounds)


def _fold_round(
    con: duckdb.DuckDBPyConnection, *, observed_at: datetime, window_start: datetime,
    window_end: datetime,
) -> None:
    """Apply one (observed_at, window) to every practice in `fold_round`, set-based."""
    con.execute(sql_text("load/fold_slot_observations.sql"), {
        "observed_at": observed_at, "window_start": window_start, "window_end": window_end,
    })
    con.execute(
        """
        delete from core.fct_slot_history as h
        using slot_history_update as u
        where h.practice_ods = u.practice_ods and h.slot_id = u.slot_id
        """
    )
    con.execute("insert into core.fct_slot_history select * from slot_history_update")
    con.execute("drop table slot_history_update")
