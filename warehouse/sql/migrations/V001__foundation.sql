-- Foundation schema: ledger, sync windows, raw responses, typed slot observations, practices.
-- Layers are DuckDB schemas: meta (bookkeeping) -> raw -> staging -> core -> marts.
create schema if not exists meta;
create schema if not exists raw;
create schema if not exists staging;
create schema if not exists core;
create schema if not exists marts;

create table meta.schema_version (
    version     integer primary key,
    name        varchar not null,
    applied_at  timestamptz not null
);

-- One row per pipeline load. Staging and marts only use rows of loads whose status is
-- 'completed' or units recorded in meta.sync_window (written in the unit's transaction).
create table meta.load_ledger (
    load_id           varchar primary key,
    flow_name         varchar not null,
    flow_run_id       varchar,
    as_of             timestamptz not null,
    started_at        timestamptz not null,
    completed_at      timestamptz,
    status            varchar not null,          -- running | completed | failed
    practices_ok      integer,
    practices_failed  integer,
    detail            varchar
);

-- One row per (practice, stream, filter, window): the last observation that completed.
create table meta.sync_window (
    practice_ods  varchar not null,
    stream        varchar not null,              -- slots
    filter_key    varchar not null,
    window_start  timestamptz not null,
    window_end    timestamptz not null,
    observed_at   timestamptz not null,
    load_id       varchar not null,
    rows_loaded   integer not null,
    completed_at  timestamptz not null,
    primary key (practice_ods, stream, filter_key, window_start, window_end)
);

-- One row per (load, practice): what happened to that practice in that load.
create table meta.practice_run (
    load_id       varchar not null,
    practice_ods  varchar not null,
    status        varchar not null,              -- ok | failed | skipped
    interaction   varchar,
    http_status   integer,
    error_class   varchar,
    message       varchar,
    next_step     varchar,
    responses     integer not null default 0,
    slot_rows     integer not null default 0,
    finished_at   timestamptz not null,
    primary key (load_id, practice_ods)
);

-- Every slot-search response exactly as received (body kept as JSON text).
create table raw.gpc_slot_search (
    load_id       varchar not null,
    practice_ods  varchar not null,
    interaction   varchar not null,
    filter_role   varchar not null,              -- general | nhs111 | hub
    filter_key    varchar not null,
    window_start  timestamptz not null,
    window_end    timestamptz not null,
    observed_at   timestamptz not null,
    fetched_at    timestamptz not null,
    http_status   integer not null,
    trace_id      varchar not null,
    body_bytes    bigint not null,
    body          json not null
);

-- Typed slots, one row per Slot entry per response; replaced per unit
-- (practice, filter, window, observed_at) so re-running an observation is idempotent.
create table staging.stg_gpconnect__slots (
    practice_ods      varchar not null,
    filter_role       varchar not null,
    filter_key        varchar not null,
    window_start      timestamptz not null,
    window_end        timestamptz not null,
    observed_at       timestamptz not null,
    slot_id           varchar,
    schedule_id       varchar,
    start_at          timestamptz,
    end_at            timestamptz,
    start_text        varchar,
    end_text          varchar,
    status            varchar,
    delivery_channel  varchar,
    slot_type         varchar,
    version_id        varchar,
    load_id           varchar not null
);

-- The practice registry as of the latest load.
create table core.dim_practice (
    practice_ods         varchar primary key,
    practice_name        varchar not null,
    kind                 varchar not null,
    list_size            integer not null,
    clinical_system      varchar not null,
    accepts_111_booking  boolean not null,
    nhs111_provider_ods  varchar,
    booking_hubs         varchar[] not null,
    ccg_code             varchar,
    pcn_code             varchar,
    nhs111_daily_quota   integer not null,
    load_id              varchar not null
);
