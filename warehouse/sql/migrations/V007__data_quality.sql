-- Data quality: what every validated batch was checked for, and the batches held back.
-- A batch is one practice's units of one load in one window stream (meta.sync_window rows
-- sharing practice_ods, stream and load_id). It is validated once, after loading and before
-- the fold (warehouse/quality.py); a batch that fails a critical expectation is quarantined:
-- its units are never folded into core.fct_slot_history and its staging rows never feed core
-- dims or marts, but they stay where they are (nothing is lost). A later batch of the same
-- practice that passes resolves the quarantine: 'promoted' when it re-observed the same instant
-- (a re-run after the source was fixed), 'superseded' when it is a later observation.

-- One row per validated batch.
create table meta.quality_batch (
    load_id              varchar not null,       -- the load that wrote the batch
    practice_ods         varchar not null,
    stream               varchar not null,
    observed_at          timestamptz not null,
    validated_by         varchar,                -- load that ran the validation; null: `slotsync validate`
    slot_rows            integer not null,
    outcome              varchar not null,       -- passed | quarantined
    failed_expectations  varchar[] not null,     -- critical expectations that failed
    warnings             varchar[] not null,     -- warning-level expectations that failed
    validated_at         timestamptz not null,
    primary key (load_id, practice_ods, stream)
);

-- One row per (validated batch, expectation): what GX found for that practice.
create table meta.quality_result (
    load_id           varchar not null,
    practice_ods      varchar not null,
    stream            varchar not null,
    observed_at       timestamptz not null,
    suite             varchar not null,          -- slots | schedules | locations | batches | appointments
    expectation       varchar not null,          -- stable name, e.g. slot_start_before_end
    expectation_type  varchar not null,          -- the GX expectation, e.g. expect_column_values_to_be_in_set
    severity          varchar not null,          -- critical (quarantines) | warning (reported only)
    success           boolean not null,
    rows_checked      integer not null,
    unexpected_count  integer not null,
    validated_at      timestamptz not null,
    primary key (load_id, practice_ods, stream, suite, expectation)
);

-- One row per quarantined batch: kept, not published, until a passing batch resolves it.
create table meta.quarantine (
    load_id              varchar not null,
    practice_ods         varchar not null,
    stream               varchar not null,
    observed_at          timestamptz not null,
    failed_expectations  varchar[] not null,
    detail               varchar not null,       -- each failed expectation with its count, in words
    next_step            varchar not null,
    quarantined_at       timestamptz not null,
    resolved_at          timestamptz,
    resolved_by_load_id  varchar,
    resolution           varchar,                -- promoted | superseded
    primary key (load_id, practice_ods, stream)
);
