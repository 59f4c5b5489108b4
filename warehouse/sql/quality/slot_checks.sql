-- Grain: one row per staged slot of a batch being validated (`quality_units`), with boolean
-- check columns for the rules that need other rows or tables. A temp view per group, never
-- copied: the expectations judge it in DuckDB (warehouse/quality.py, int_check_counts.sql) and
-- GX sees only the rows that break one (int_check_failures.sql). Identifiers and vocabularies are kept as they are.
--   slot_minutes           length of the slot (GX: 1 to 120 minutes)
--   start_before_end       start strictly before end
--   inside_window          the slot lies fully inside the search window that returned it
--   offset_matches_uk      the provider's text offsets (+00:00 / +01:00) are the UK offset in
--                          force at that instant (Europe/London), for start and end
--   slot_id_occurrences    times the slot id appears in its response (practice, observation,
--                          filter, window); 1 means unique
--   schedule_found         the Schedule the slot references is in the same response
-- Written for a few hundred ms per million slots: a window count, two time-zone conversions and
-- two regexes per row cost seconds; the same values come from an aggregate of the duplicates,
-- the distinct instants and the usual two offsets spelled out.
with

schedules as (
    select distinct practice_ods, filter_key, window_start, observed_at, schedule_id
    from quality_schedules
),

repeated_hashes as (
    -- Hashes of (response, slot id) seen more than once: grouping one integer per slot is
    -- several times cheaper than grouping the five columns; `duplicates` checks them exactly.
    select hash(practice_ods, observed_at, filter_key, window_start, slot_id) as response_slot
    from quality_slots
    group by all
    having count(*) > 1
),

duplicates as (
    -- Slot ids seen more than once in one response; every other slot's id occurs once.
    select practice_ods, observed_at, filter_key, window_start, slot_id, count(*) as occurrences
    from quality_slots
    where hash(practice_ods, observed_at, filter_key, window_start, slot_id)
          in (select response_slot from repeated_hashes)
    group by all
    having count(*) > 1
),

uk_offsets as (
    -- Europe/London's offset in minutes at each distinct instant (a night repeats a few
    -- thousand of them), instead of two time-zone conversions per slot.
    select
        instant,
        ((epoch(instant at time zone 'Europe/London') - epoch(instant at time zone 'UTC')) / 60)::integer
            as uk_minutes
    from (select start_at as instant from quality_slots union select end_at from quality_slots)
),

offsets as (
    -- The text offset ('' when none); '+00:00' and '+01:00', nearly every slot, without the regex.
    select
        *,
        case when right(start_text, 6) in ('+00:00', '+01:00') then right(start_text, 6)
             else regexp_extract(start_text, '(Z|[+-]\d{2}:?\d{2})$', 1) end as start_offset,
        case when right(end_text, 6) in ('+00:00', '+01:00') then right(end_text, 6)
             else regexp_extract(end_text, '(Z|[+-]\d{2}:?\d{2})$', 1) end as end_offset
    from quality_slots
),

minutes as (
    -- Text offset in minutes (null when the text has none).
    select
        *,
        case
            when start_offset = '+00:00' or start_offset = 'Z' then 0
            when start_offset = '+01:00' then 60
            when start_offset = '' then null
            else (case when left(start_offset, 1) = '-' then -1 else 1 end)
                 * (substr(start_offset, 2, 2)::integer * 60 + right(start_offset, 2)::integer)
        end as start_offset_minutes,
        case
            when end_offset = '+00:00' or end_offset = 'Z' then 0
            when end_offset = '+01:00' then 60
            when end_offset = '' then null
            else (case when left(end_offset, 1) = '-' then -1 else 1 end)
                 * (substr(end_offset, 2, 2)::integer * 60 + right(end_offset, 2)::integer)
        end as end_offset_minutes
    from offsets
)

select
    o.practice_ods,
    o.stream,
    o.batch_load_id as load_id,
    coalesce(o.slot_id, '') as slot_id,
    o.status,
    o.delivery_channel,
    -- Whole seconds crossed, as date_diff('second', ...) counts them, without its calendar cost.
    (floor(epoch_us(o.end_at) / 1e6) - floor(epoch_us(o.start_at) / 1e6)) / 60.0 as slot_minutes,
    coalesce(o.start_at < o.end_at, false) as start_before_end,
    coalesce(o.start_at >= o.window_start and o.end_at <= o.window_end, false) as inside_window,
    coalesce(
        o.start_offset_minutes = us.uk_minutes
        and o.end_offset_minutes = ue.uk_minutes,
        false
    ) as offset_matches_uk,
    coalesce(d.occurrences, 1) as slot_id_occurrences,
    sc.schedule_id is not null as schedule_found
from minutes as o
left join uk_offsets as us on us.instant = o.start_at
left join uk_offsets as ue on ue.instant = o.end_at
left join duplicates as d
  on d.practice_ods = o.practice_ods and d.observed_at = o.observed_at and d.filter_key = o.filter_key
 and d.window_start = o.window_start and d.slot_id is not distinct from o.slot_id
left join schedules as sc
  on sc.practice_ods = o.practice_ods and sc.filter_key = o.filter_key
 and sc.window_start = o.window_start and sc.observed_at = o.observed_at
 and sc.schedule_id = o.schedule_id
