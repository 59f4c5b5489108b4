-- Grain: one row per staged Schedule of a batch being validated (`quality_schedules`).
--   schedule_id_occurrences  times the schedule id appears in its response; 1 means unique
--   location_found           the schedule names a Location that is in the same response
with

schedules as (
    select * from quality_schedules
),

locations as (
    select distinct practice_ods, filter_key, window_start, observed_at, location_id
    from quality_locations
)

select
    s.practice_ods,
    s.stream,
    s.batch_load_id as load_id,
    s.filter_key,
    s.observed_at,
    coalesce(s.schedule_id, '') as schedule_id,
    count(*) over (
        partition by s.practice_ods, s.observed_at, s.filter_key, s.window_start, s.schedule_id
    ) as schedule_id_occurrences,
    l.location_id is not null as location_found
from schedules as s
left join locations as l
  on l.practice_ods = s.practice_ods and l.filter_key = s.filter_key
 and l.window_start = s.window_start and l.observed_at = s.observed_at
 and l.location_id = s.location_id
