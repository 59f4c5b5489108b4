-- Strict where the data would be wrong: per practice of the batch, the count of each problem
-- that refuses it ($load_id: the load being written). Only practices with a problem.
with

landed as (
    select
        practice_ods,
        count(*) filter (
            where load_id is distinct from $load_id
               or named_practice_ods is distinct from practice_ods
               or filter_key is null or filter_role is null or window_start is null
               or window_end is null or observed_at is null
               -- the rest raw.gpc_slot_search requires (a damaged landing file)
               or interaction is null or fetched_at is null or http_status is null
               or trace_id is null or body_bytes is null
        ) as foreign_lines,
        count(*) filter (where bundle_type is distinct from 'Bundle') as not_bundle
    from slotsync_loader.loader_landed
    group by all
),

slots as (
    select
        practice_ods,
        count(*) filter (where slot_id is null or slot_id = '') as missing_id,
        count(*) filter (where schedule_id is null) as missing_schedule,
        count(*) filter (where start_at is null) as bad_start,
        count(*) filter (where end_at is null) as bad_end
    from slotsync_loader.loader_stg_slots
    group by all
)

select practice_ods, foreign_lines, not_bundle,
       coalesce(missing_id, 0), coalesce(missing_schedule, 0),
       coalesce(bad_start, 0), coalesce(bad_end, 0)
from landed
left join slots using (practice_ods)
where foreign_lines + not_bundle + coalesce(missing_id, 0) + coalesce(missing_schedule, 0)
      + coalesce(bad_start, 0) + coalesce(bad_end, 0) > 0
