-- Slot history: one row per slot ever seen, maintained observation by observation in the
-- same transaction as the observation's staging rows (see load/apply_slot_observation.sql).
-- Uniqueness of (practice_ods, slot_id) holds by construction (replace by key) and is
-- checked by data-quality expectations; no index, because DuckDB's index-backed keys make
-- large upserts 20-30x slower.
create table core.fct_slot_history (
    practice_ods         varchar not null,
    slot_id              varchar not null,
    schedule_id          varchar,
    start_at             timestamptz not null,
    end_at               timestamptz not null,
    start_text           varchar,
    slot_type            varchar,
    delivery_channel     varchar,
    ---------- what the differential searches showed over time
    first_seen_at        timestamptz not null,
    last_seen_at         timestamptz not null,
    last_checked_at      timestamptz not null,   -- latest complete observation covering the slot
    times_seen           integer not null,
    first_audience       varchar not null,       -- general | nhs111 | hub
    last_audience        varchar not null,
    ever_nhs111          boolean not null,
    ever_hub             boolean not null,
    audience_changed_at  timestamptz,            -- e.g. an NHS 111 slot released to general
    ---------- disappearance: booked, or removed from the book
    disappeared_at       timestamptz,            -- first complete observation it was missing from
    reappeared_count     integer not null,       -- freed again (a cancellation) after disappearing
    load_id              varchar not null
);

-- Reconciliation outcome of each load, per practice and reason (kept for every load).
create table meta.reconciliation_summary (
    load_id       varchar not null,
    practice_ods  varchar not null,
    reason_code   varchar not null,
    findings      integer not null,
    primary key (load_id, practice_ods, reason_code)
);
