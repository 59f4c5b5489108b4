-- Grain: one row per practice per UK day with slots reserved for NHS 111.
-- `offered` = slots that were ever reserved for 111 (seen in the 111 provider's search and
-- not in an unfiltered one); `booked_by_111` = those with a live appointment the 111
-- provider logged and the practice confirmed; `released` = reserved slots later seen open
-- to everyone (given back to the practice); `unused` = still free at the last observation
-- before start; `disappeared_unconfirmed` = gone before start with no confirming
-- appointment (removed from the book, or booked by someone without a log).
with

slots as (
    select * from core.int_slot_states where ever_nhs111
),

practices as (
    select practice_ods, practice_name, clinical_system, ccg_code, pcn_code, nhs111_daily_quota
    from core.dim_practice
    where kind = 'practice'
)

select
    p.practice_ods,
    p.practice_name,
    p.clinical_system,
    p.ccg_code,
    p.pcn_code,
    s.slot_day,
    isodow(s.slot_day) <= 5 as is_core_day,
    p.nhs111_daily_quota as quota,
    count(*) as offered,
    count(*) filter (where s.state = 'booked_confirmed' and s.confirmed_booked_by_kind = 'nhs111')
        as booked_by_111,
    count(*) filter (where s.state = 'booked_confirmed' and s.confirmed_booked_by_kind <> 'nhs111')
        as booked_by_others,
    count(*) filter (where s.last_audience = 'general') as released,
    count(*) filter (where s.last_audience = 'general' and s.state in ('booked_confirmed', 'booked_inferred'))
        as released_then_booked,
    count(*) filter (where s.state = 'booked_inferred') as disappeared_unconfirmed,
    count(*) filter (where s.state = 'unused') as unused,
    count(*) filter (where s.state = 'free') as still_free,
    round(
        count(*) filter (where s.state = 'booked_confirmed' and s.confirmed_booked_by_kind = 'nhs111')
        / count(*), 4
    ) as utilisation_111,
    bool_and(s.start_passed) as is_final
from slots as s
join practices as p using (practice_ods)
group by all
order by p.practice_ods, s.slot_day
