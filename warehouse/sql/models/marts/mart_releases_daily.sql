-- Grain: one row per practice per UK day with NHS 111 release decisions or slots seen
-- released. `released` = given back through the supplier API; `queued` = written to the
-- practice's work-list (systems with no write API); `refused` = the supplier refused (booked
-- or changed since the live re-check: the booking wins); `skipped` = not released because the
-- live re-check showed it booked or already open; `released_then_booked` = released slots that
-- were then booked (confirmed or inferred from the snapshots); `released_unused` = released
-- slots still free at a check within 2 hours of their start.
with

decisions as (
    select * from core.fct_release_decision where not dry_run
),

slots as (
    select practice_ods, slot_id, state from core.int_slot_states
),

joined as (
    select d.*, s.state
    from decisions as d
    left join slots as s using (practice_ods, slot_id)
)

select
    practice_ods,
    slot_day,
    count(*) filter (where outcome in ('released', 'already_released')) as released,
    count(*) filter (where outcome in ('queued', 'already_queued')) as queued,
    count(*) filter (where outcome like 'refused_%') as refused,
    count(*) filter (where outcome like 'skipped_%') as skipped,
    count(*) filter (where outcome = 'failed' or outcome = 'attempting') as failed_or_interrupted,
    count(*) filter (where outcome in ('released', 'already_released', 'queued', 'already_queued')
                     and state in ('booked_confirmed', 'booked_inferred')) as released_then_booked,
    count(*) filter (where outcome in ('released', 'already_released', 'queued', 'already_queued')
                     and state = 'unused') as released_unused,
    round(
        count(*) filter (where outcome in ('released', 'already_released', 'queued', 'already_queued')
                         and state in ('booked_confirmed', 'booked_inferred'))
        / nullif(count(*) filter (where outcome in ('released', 'already_released', 'queued',
                                                    'already_queued')), 0),
        4
    ) as uptake
from joined
group by all
order by practice_ods, slot_day
