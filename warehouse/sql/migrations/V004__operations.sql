-- Operations: what each load set out to fetch. With meta.sync_window (what completed) this
-- makes "what is still missing" a query, so a re-run fetches exactly the units that did
-- not complete, observed at the same instant, and never trusts an orchestrator's cache.
create table meta.load_plan (
    load_id       varchar primary key,
    mode          varchar not null,              -- scheduled | rerun | backfill
    stream        varchar not null,              -- the meta.sync_window stream it completes
    plan_start    timestamptz not null,          -- first window's start
    horizon_days  integer not null,              -- windows cover plan_start .. UK midnight + days
    window_days   integer not null,
    practices     varchar[],                     -- null: every practice in the registry
    rerun_of      varchar                        -- the load_id this run repairs
);
