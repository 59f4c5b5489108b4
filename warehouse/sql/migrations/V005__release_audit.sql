-- Audit of every release decision the release flow makes: one row per (run, slot) decision,
-- released, skipped and why, refused, queued on a work-list, or a dry run. Written before the
-- release call (outcome 'attempting') and completed after it, so a crash in between is visible
-- and the re-run repeats the call with the same idempotency key (never a second release).
create schema if not exists audit;

create table audit.release_decision (
    decision_id      varchar primary key,
    idempotency_key  varchar not null,          -- one per slot and policy window
    flow_run_id      varchar,
    as_of            timestamptz not null,       -- the run's "now"
    practice_ods     varchar not null,
    slot_id          varchar not null,
    slot_start_at    timestamptz not null,
    slot_start_text  varchar,
    slot_type        varchar,
    policy_name      varchar not null,
    due_at           timestamptz not null,       -- when the policy says it may be released
    releaser         varchar not null,           -- supplier-api | worklist
    dry_run          boolean not null,
    outcome          varchar not null,           -- attempting | released | already_released | queued
                                                 -- | already_queued | refused_* | skipped_* | dry_run | failed
    reason           varchar,
    state_before     varchar,                    -- what the snapshot and the live re-check showed
    state_after      varchar,
    version_before   varchar,
    version_after    varchar,
    http_status      integer,
    decided_at       timestamptz not null,
    completed_at     timestamptz
);
