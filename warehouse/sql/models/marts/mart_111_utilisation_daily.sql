-- Grain: one row per practice per UK day with slots reserved for NHS 111.
-- `offered` = slots that were ever reserved for 111 (seen in the 111 provider's search and
-- not in an unfiltered one), plus slots the 111 provider booked before any of our searches
-- could see them (known from its booking log, confirmed at the practice);
-- `booked_by_111` = offered slots with a live appointment the 111 provider logged and the
-- practice confirmed; `released` = reserved slots later seen open to everyone (given back to
-- the practice); `unused` = still free at a check within 2 hours of start; `unknown` = free
-- at a last check earlier than that; `disappeared_unconfirmed` = gone before start with no
-- confirming appointment (removed from the book, or booked by someone without a log).
-- `quota` is the day's NHS 111 quota from the list size in force that day
-- (core.int_list_size_in_force).
with

seen as (
    select * from core.int_slot_states where ever_nhs111
),

unseen_111_bookings as (
    -- Booked by 111 before any snapshot saw the slot free: only the log knows it was offered.
    select a.practice_ods, a.appointment_day as slot_day, count(*) as slots
    from (
        select practice_ods, appointment_day, unnest(slot_ids) as slot_id
        from core.fct_appointment
        where confirmation = 'confirmed' and booked_by_kind = 'nhs111'
    ) as a
    anti join core.fct_slot_history as h using (practice_ods, slot_id)
    group by all
),

practices as (
    select practice_ods, practice_name, clinical_system, sub_icb_code, icb_code, region_code, pcn_code, nhs111_daily_quota
    from core.dim_practice
    where kind = 'practice'
),

per_day as (
    select
        practice_ods,
        slot_day,
        count(*) as seen_offered,
        count(*) filter (where state = 'booked_confirmed' and confirmed_booked_by_kind = 'nhs111')
            as seen_booked_by_111,
        count(*) filter (where state = 'booked_confirmed' and confirmed_booked_by_kind <> 'nhs111')
            as booked_by_others,
        count(*) filter (where last_audience = 'general') as released,
        count(*) filter (where last_audience = 'general' and state in ('booked_confirmed', 'booked_inferred'))
            as released_then_booked,
        count(*) filter (where state = 'booked_inferred') as disappeared_unconfirmed,
        count(*) filter (where state = 'unused') as unused,
        count(*) filter (where state = 'unknown') as unknown,
        count(*) filter (where state = 'free') as still_free,
        bool_and(start_passed) as is_final
    from seen
    group by all
),

sizes as (
    select * from core.int_list_size_in_force
),

days as (
    select practice_ods, slot_day from per_day
    union
    select practice_ods, slot_day from unseen_111_bookings
)

select
    p.practice_ods,
    p.practice_name,
    p.clinical_system,
    p.sub_icb_code,
    p.icb_code,
    p.region_code,
    p.pcn_code,
    d.slot_day,
    isodow(d.slot_day) <= 5 as is_core_day,
    coalesce(z.nhs111_daily_quota, p.nhs111_daily_quota) as quota,
    coalesce(s.seen_offered, 0) + coalesce(u.slots, 0) as offered,
    coalesce(s.seen_booked_by_111, 0) + coalesce(u.slots, 0) as booked_by_111,
    coalesce(u.slots, 0) as booked_before_seen,
    coalesce(s.booked_by_others, 0) as booked_by_others,
    coalesce(s.released, 0) as released,
    coalesce(s.released_then_booked, 0) as released_then_booked,
    coalesce(s.disappeared_unconfirmed, 0) as disappeared_unconfirmed,
    coalesce(s.unused, 0) as unused,
    coalesce(s.unknown, 0) as unknown,
    coalesce(s.still_free, 0) as still_free,
    round(
        (coalesce(s.seen_booked_by_111, 0) + coalesce(u.slots, 0))
        / (coalesce(s.seen_offered, 0) + coalesce(u.slots, 0)), 4
    ) as utilisation_111,
    coalesce(s.is_final, true) as is_final
from days as d
join practices as p using (practice_ods)
left join per_day as s using (practice_ods, slot_day)
left join unseen_111_bookings as u using (practice_ods, slot_day)
left join sizes as z
    on z.practice_ods = d.practice_ods and d.slot_day >= z.in_force_from and d.slot_day < z.in_force_until
order by p.practice_ods, d.slot_day
