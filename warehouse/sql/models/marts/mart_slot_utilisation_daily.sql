-- Grain: one row per practice or hub per UK day per audience (general | nhs111 | hub, the
-- audience a slot was first offered to). `offered` = distinct slots seen free at any
-- observation; `booked` = confirmed by a booking organisation's log and the practice's
-- Read Appointment, or inferred (disappeared before its start, not freed again);
-- `unused` = still free at a check within 2 hours of its start; `unknown` = free at a last
-- check earlier than that (a late booking cannot be ruled out). Only days whose slots have
-- all started count as final (`is_final`).
with

slots as (
    select * from core.int_slot_states
),

practices as (
    select practice_ods, practice_name, kind, clinical_system, sub_icb_code, icb_code, region_code, pcn_code
    from core.dim_practice
),

per_day as (
    select
        practice_ods,
        slot_day,
        first_audience as audience,
        count(*) as offered,
        count(*) filter (where state = 'booked_confirmed') as booked_confirmed,
        count(*) filter (where state = 'booked_inferred') as booked_inferred,
        count(*) filter (where state = 'unused') as unused,
        count(*) filter (where state = 'unknown') as unknown,
        count(*) filter (where state = 'free') as still_free,
        bool_and(start_passed) as is_final
    from slots
    group by all
)

select
    p.practice_ods,
    p.practice_name,
    p.kind,
    p.clinical_system,
    p.sub_icb_code,
    p.icb_code,
    p.region_code,
    p.pcn_code,
    d.slot_day,
    isodow(d.slot_day) as iso_day_of_week,
    d.audience,
    d.offered,
    d.booked_confirmed,
    d.booked_inferred,
    d.booked_confirmed + d.booked_inferred as booked,
    d.unused,
    d.unknown,
    d.still_free,
    round((d.booked_confirmed + d.booked_inferred) / nullif(d.offered, 0), 4) as utilisation,
    d.is_final
from per_day as d
join practices as p using (practice_ods)
order by p.practice_ods, d.slot_day, d.audience
