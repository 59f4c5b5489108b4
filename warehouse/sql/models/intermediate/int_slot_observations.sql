-- One row per (practice, observation time, slot): which differential searches returned the
-- slot, and the audience that implies. Only observations where every filter the practice
-- needs completed are used, otherwise a missing no-filter search would make every slot
-- look reserved.
with

expected as (
    select
        practice_ods,
        1 + (case when accepts_111_booking then 1 else 0 end) + len(booking_hubs) as filters_needed
    from core.dim_practice
),

observation_units as (
    select practice_ods, window_start, window_end, observed_at, count(distinct filter_key) as filters_seen
    from meta.sync_window
    where stream = 'slots'
    group by all
),

complete_units as (
    select u.practice_ods, u.window_start, u.window_end, u.observed_at
    from observation_units as u
    join expected as e using (practice_ods)
    where u.filters_seen >= e.filters_needed
),

slots as (
    select s.*
    from staging.stg_gpconnect__slots as s
    semi join complete_units as c
        on s.practice_ods = c.practice_ods
        and s.window_start = c.window_start
        and s.window_end = c.window_end
        and s.observed_at = c.observed_at
)

select
    practice_ods,
    observed_at,
    slot_id,
    any_value(schedule_id) as schedule_id,
    any_value(start_at) as start_at,
    any_value(end_at) as end_at,
    any_value(slot_type) as slot_type,
    any_value(delivery_channel) as delivery_channel,
    bool_or(filter_role = 'general') as in_general_search,
    bool_or(filter_role = 'nhs111') as in_nhs111_search,
    bool_or(filter_role = 'hub') as in_hub_search,
    case
        when bool_or(filter_role = 'general') then 'general'
        when bool_or(filter_role = 'nhs111') then 'nhs111'
        else 'hub'
    end as audience,
    (any_value(start_at) at time zone 'Europe/London')::date as slot_day
from slots
group by practice_ods, observed_at, slot_id
