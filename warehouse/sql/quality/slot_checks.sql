-- Grain: one row per staged slot of a batch being validated (`quality_units`), with boolean
-- check columns for the rules that need other rows or tables; GX validates the columns and
-- names the expectation that failed. Identifiers and vocabularies are validated as they are.
--   slot_minutes           length of the slot (GX: 1 to 120 minutes)
--   start_before_end       start strictly before end
--   inside_window          the slot lies fully inside the search window that returned it
--   offset_matches_uk      the provider's text offsets (+00:00 / +01:00) are the UK offset in
--                          force at that instant (Europe/London), for start and end
--   slot_id_occurrences    times the slot id appears in its response (practice, observation,
--                          filter, window); 1 means unique
--   schedule_found         the Schedule the slot references is in the same response
with

slots as (
    select * from quality_slots
),

schedules as (
    select distinct practice_ods, filter_key, window_start, observed_at, schedule_id
    from quality_schedules
),

offsets as (
    select
        *,
        regexp_extract(start_text, '(Z|[+-]\d{2}:?\d{2})$', 1) as start_offset,
        regexp_extract(end_text, '(Z|[+-]\d{2}:?\d{2})$', 1) as end_offset
    from slots
),

minutes as (
    -- Text offset in minutes (null when the text has none) and Europe/London's at the instant.
    select
        *,
        case
            when start_offset = 'Z' then 0
            when start_offset = '' then null
            else (case when left(start_offset, 1) = '-' then -1 else 1 end)
                 * (substr(start_offset, 2, 2)::integer * 60 + right(start_offset, 2)::integer)
        end as start_offset_minutes,
        case
            when end_offset = 'Z' then 0
            when end_offset = '' then null
            else (case when left(end_offset, 1) = '-' then -1 else 1 end)
                 * (substr(end_offset, 2, 2)::integer * 60 + right(end_offset, 2)::integer)
        end as end_offset_minutes,
        ((epoch(start_at at time zone 'Europe/London') - epoch(start_at at time zone 'UTC')) / 60)::integer as start_uk_minutes,
        ((epoch(end_at at time zone 'Europe/London') - epoch(end_at at time zone 'UTC')) / 60)::integer as end_uk_minutes
    from offsets
)

-- Only what the suite reads and the batch key: a night's rows pass through pandas and GX.
select
    o.practice_ods,
    o.stream,
    o.batch_load_id as load_id,
    coalesce(o.slot_id, '') as slot_id,
    o.status,
    o.delivery_channel,
    date_diff('second', o.start_at, o.end_at) / 60.0 as slot_minutes,
    coalesce(o.start_at < o.end_at, false) as start_before_end,
    coalesce(o.start_at >= o.window_start and o.end_at <= o.window_end, false) as inside_window,
    coalesce(
        o.start_offset_minutes = o.start_uk_minutes
        and o.end_offset_minutes = o.end_uk_minutes,
        false
    ) as offset_matches_uk,
    count(*) over (
        partition by o.practice_ods, o.observed_at, o.filter_key, o.window_start, o.slot_id
    ) as slot_id_occurrences,
    sc.schedule_id is not null as schedule_found
from minutes as o
left join schedules as sc
  on sc.practice_ods = o.practice_ods and sc.filter_key = o.filter_key
 and sc.window_start = o.window_start and sc.observed_at = o.observed_at
 and sc.schedule_id = o.schedule_id
