-- Every registry practice with its last successful scheduled sync ($flows), its last
-- full-horizon one ($full_horizon_flow) and its latest run's outcome: what `slotsync status`
-- shows. A success counts only while its observation is still in the $stream window state.
with

runs as (
    select r.practice_ods, r.status, r.interaction, r.http_status, r.error_class,
           r.message, r.next_step, l.load_id, l.flow_name, l.flow_run_id, l.as_of,
           l.started_at
    from meta.practice_run as r
    join meta.load_ledger as l using (load_id)
    where l.flow_name in (select unnest($flows::varchar[]))
),

successes as (
    select
        practice_ods,
        max(as_of) as last_sync_at,
        max(as_of) filter (where flow_name = $full_horizon_flow) as last_nightly_at
    from runs
    where status = 'ok' and exists (
        select 1 from meta.sync_window as w
        where w.stream = $stream and w.practice_ods = runs.practice_ods
          and w.observed_at = runs.as_of
    )
    group by all
),

latest as (
    select *
    from runs
    -- A re-run shares its original's as_of (and, replayed, its clock): the wall-clock
    -- start of the load breaks the tie.
    qualify row_number() over (
        partition by practice_ods order by as_of desc, started_at desc
    ) = 1
)

select
    p.practice_ods, p.practice_name, p.kind, s.last_sync_at, s.last_nightly_at,
    latest.status, latest.load_id, latest.flow_run_id, latest.as_of, latest.interaction,
    latest.http_status, latest.error_class, latest.message, latest.next_step
from core.dim_practice as p
left join successes as s using (practice_ods)
left join latest using (practice_ods)
order by p.practice_ods
