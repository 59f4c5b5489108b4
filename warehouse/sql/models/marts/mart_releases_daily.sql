-- Grain: one row per practice per UK day with NHS 111 slots that were given back to the
-- practice (reserved for 111, later seen open to everyone before their start), and how many
-- of those were then booked. Release decisions themselves are audited by the release flow.
with

released as (
    select *
    from core.int_slot_states
    where ever_nhs111 and last_audience = 'general' and audience_changed_at <= start_at
)

select
    practice_ods,
    slot_day,
    count(*) as released,
    count(*) filter (where state in ('booked_confirmed', 'booked_inferred')) as released_then_booked,
    count(*) filter (where state = 'unused') as released_unused,
    count(*) filter (where state = 'free') as released_still_free,
    round(count(*) filter (where state in ('booked_confirmed', 'booked_inferred')) / count(*), 4)
        as uptake
from released
group by all
order by practice_ods, slot_day
