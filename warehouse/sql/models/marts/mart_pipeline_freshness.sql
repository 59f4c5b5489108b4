-- Grain: one row per practice or hub in the registry: when its slots were last captured
-- completely, and how its latest load went. `last_nightly_at` = the last complete capture by
-- the nightly (full-horizon) sync, the one freshness is judged on (as `slotsync status` does).
with

last_success as (
    select
        w.practice_ods,
        max(w.observed_at) as last_observed_at,
        max(w.completed_at) as last_completed_at,
        max(w.observed_at) filter (where l.flow_name = 'nightly_sync') as last_nightly_at
    from meta.sync_window as w
    left join meta.load_ledger as l using (load_id)
    -- A quarantined capture is not a success (warehouse/quality.py).
    anti join meta.quarantine as q
        on q.practice_ods = w.practice_ods and q.stream = w.stream and q.load_id = w.load_id
    where w.stream = 'slots'  -- backfills re-observe the past and must not look like freshness
    group by all
),

latest_run as (
    select r.*
    from meta.practice_run as r
    left join meta.load_ledger as l using (load_id)
    -- A re-run shares its original's instant (and, replayed, its clock): the wall-clock start
    -- of the load breaks the tie, so a repaired practice shows its repair.
    qualify row_number() over (
        partition by r.practice_ods order by r.finished_at desc, l.started_at desc nulls last, r.load_id desc
    ) = 1
)

select
    p.practice_ods,
    p.practice_name,
    p.kind,
    p.clinical_system,
    s.last_observed_at,
    s.last_completed_at,
    s.last_nightly_at,
    r.load_id as latest_load_id,
    r.status as latest_status,
    r.error_class as latest_error_class,
    r.message as latest_error,
    r.next_step as latest_next_step
from core.dim_practice as p
left join last_success as s using (practice_ods)
left join latest_run as r using (practice_ods)
order by p.practice_ods
