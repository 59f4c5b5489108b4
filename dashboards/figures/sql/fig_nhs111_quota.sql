-- Figure group: NHS 111 quota totals over the period, summed from the scorecard (the
-- `scorecard` relation is fig_nhs111_scorecard.sql, so the tiles and the scorecard's totals
-- cannot differ). `practices_below_quota` counts practices set up for 111 direct booking with
-- at least one core day below quota; `practices_not_set_up_for_111` are listed apart.
-- `core_days` = distinct core days in the period (0: the period has no core day, so no quota
-- applies and nothing can be said about meeting it).
select
    count(*) as practices,
    (
        select count(*) from range($first_day::timestamp, $last_day::timestamp + interval 1 day,
                                   interval 1 day) as d(day)
        where isodow(d.day) <= 5
    ) as core_days,
    coalesce(sum(core_days), 0)::bigint as core_practice_days,
    coalesce(sum(offered_core_days), 0)::bigint as nhs111_offered_core_days,
    coalesce(sum(quota), 0)::bigint as nhs111_quota,
    coalesce(sum(shortfall_slots), 0)::bigint as nhs111_shortfall_slots,
    count(*) filter (where accepts_111_booking and core_days_below > 0) as practices_below_quota,
    coalesce(sum(core_days_below) filter (where accepts_111_booking), 0)::bigint as core_practice_days_below,
    count(*) filter (where not accepts_111_booking) as practices_not_set_up_for_111
from scorecard
