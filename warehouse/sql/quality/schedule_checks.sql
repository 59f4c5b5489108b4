-- Grain: one row per staged Schedule of a batch being validated (`quality_units`).
--   schedule_id_occurrences  times the schedule id appears in its response; 1 means unique
--   location_found           the schedule names a Location that is in the same response
with

units as (
    select * from quality_units
),

schedules as (
    select u.stream, u.load_id as batch_load_id, s.*
    from staging.stg_gpconnect__schedules as s
    join units as u
      on s.practice_ods = u.practice_ods and s.filter_key = u.filter_key
     and s.window_start = u.window_start and s.window_end = u.window_end
     and s.observed_at = u.observed_at
    where s.observed_at between $first_observed and $last_observed
      and s.practice_ods between $first_practice and $last_practice
),

locations as (
    select distinct l.practice_ods, l.filter_key, l.window_start, l.observed_at, l.location_id
    from staging.stg_gpconnect__locations as l
    semi join units as u
      on l.practice_ods = u.practice_ods and l.filter_key = u.filter_key
     and l.window_start = u.window_start and l.window_end = u.window_end
     and l.observed_at = u.observed_at
    where l.observed_at between $first_observed and $last_observed
      and l.practice_ods between $first_practice and $last_practice
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
