-- REFERENCE ONLY (test oracle, never run by the loader): the per-observation slot-history update
-- the loader used before migration V006, verbatim. tests/warehouse/test_fold.py applies it one
-- (practice, window, observed_at) at a time, as the old loader did, and requires the set-based
-- fold (warehouse/sql/load/fold_slot_observations.sql) to produce exactly the same history.
--
-- Apply one complete observation (practice, window, observed_at) to core.fct_slot_history.
-- Parameters: $practice_ods, $window_start, $window_end, $observed_at, $load_id.
-- Produces the new state of every slot the observation says something about: slots it
-- returned, and slots already known to lie fully inside its window (absent = disappeared).
-- Re-applying an observation, or applying one older than what a slot already reflects,
-- changes nothing: that is what makes re-runs and crash recovery idempotent.
create or replace temp table slot_history_update as
with

observed as (
    select
        slot_id,
        any_value(schedule_id) as schedule_id,
        any_value(start_at) as start_at,
        any_value(end_at) as end_at,
        any_value(start_text) as start_text,
        any_value(slot_type) as slot_type,
        any_value(delivery_channel) as delivery_channel,
        case
            when bool_or(filter_role = 'general') then 'general'
            when bool_or(filter_role = 'nhs111') then 'nhs111'
            else 'hub'
        end as audience
    from staging.stg_gpconnect__slots
    where practice_ods = $practice_ods
      and window_start = $window_start
      and window_end = $window_end
      and observed_at = $observed_at
    group by slot_id
),

known as (
    -- Slots this observation should have returned if still free: fully inside the window
    -- and not yet started (providers drop slots from the search as they start).
    select *
    from core.fct_slot_history
    where practice_ods = $practice_ods
      and start_at >= $window_start
      and start_at > $observed_at::timestamptz
      and end_at <= $window_end
),

merged as (
    select
        o.slot_id as o_slot_id,
        k.slot_id as k_slot_id,
        o.* exclude (slot_id),
        k.* exclude (slot_id, schedule_id, start_at, end_at, start_text, slot_type, delivery_channel,
                     practice_ods, load_id),
        k.load_id as known_load_id,
        k.schedule_id as k_schedule_id,
        k.start_at as k_start_at,
        k.end_at as k_end_at,
        k.start_text as k_start_text,
        k.slot_type as k_slot_type,
        k.delivery_channel as k_delivery_channel
    from observed as o
    full outer join known as k on o.slot_id = k.slot_id
),

decided as (
    select
        *,
        case
            when k_slot_id is null then 'new'
            when last_checked_at >= $observed_at::timestamptz then 'unchanged'
            when o_slot_id is not null then 'present'
            else 'absent'
        end as change
    from merged
)

select
    $practice_ods as practice_ods,
    coalesce(o_slot_id, k_slot_id) as slot_id,
    coalesce(schedule_id, k_schedule_id) as schedule_id,
    coalesce(start_at, k_start_at) as start_at,
    coalesce(end_at, k_end_at) as end_at,
    coalesce(start_text, k_start_text) as start_text,
    coalesce(slot_type, k_slot_type) as slot_type,
    coalesce(delivery_channel, k_delivery_channel) as delivery_channel,
    case change when 'new' then $observed_at::timestamptz else first_seen_at end as first_seen_at,
    case change when 'new' then $observed_at::timestamptz when 'present' then $observed_at::timestamptz
        else last_seen_at end as last_seen_at,
    case change when 'unchanged' then last_checked_at else $observed_at::timestamptz end as last_checked_at,
    case change when 'new' then 1 when 'present' then times_seen + 1 else times_seen end as times_seen,
    case change when 'new' then audience else first_audience end as first_audience,
    case change when 'new' then audience when 'present' then audience else last_audience end
        as last_audience,
    case change when 'new' then audience = 'nhs111' when 'present' then ever_nhs111 or audience = 'nhs111'
        else ever_nhs111 end as ever_nhs111,
    case change when 'new' then audience = 'hub' when 'present' then ever_hub or audience = 'hub'
        else ever_hub end as ever_hub,
    case
        when change = 'present' and audience <> last_audience then $observed_at::timestamptz
        else audience_changed_at
    end as audience_changed_at,
    case
        when change = 'absent' then coalesce(disappeared_at, $observed_at::timestamptz)
        when change = 'present' then null
        else disappeared_at
    end as disappeared_at,
    case
        when change = 'present' and disappeared_at is not null then reappeared_count + 1
        when change = 'new' then 0
        else reappeared_count
    end as reappeared_count,
    case change when 'unchanged' then known_load_id else $load_id end as load_id
from decided
