-- Grain: one row per hub per UK day per hour of slot start: slots offered in the hub's own
-- book and how many were booked (confirmed or inferred), for extended-access planning.
with

slots as (
    select s.*
    from core.int_slot_states as s
    join core.dim_practice as p using (practice_ods)
    where p.kind = 'hub'
)

select
    s.practice_ods as hub_ods,
    p.practice_name as hub_name,
    p.sub_icb_code,
    p.icb_code,
    p.region_code,
    s.slot_day,
    isodow(s.slot_day) as iso_day_of_week,
    s.slot_hour,
    count(*) as offered,
    count(*) filter (where s.state in ('booked_confirmed', 'booked_inferred')) as booked,
    count(*) filter (where s.state = 'unused') as unused,
    count(*) filter (where s.state = 'unknown') as unknown,
    round(count(*) filter (where s.state in ('booked_confirmed', 'booked_inferred')) / count(*), 4)
        as utilisation,
    bool_and(s.start_passed) as is_final
from slots as s
join core.dim_practice as p using (practice_ods)
group by all
order by hub_ods, s.slot_day, s.slot_hour
