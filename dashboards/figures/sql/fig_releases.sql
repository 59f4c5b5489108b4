-- Figure group: NHS 111 slots the release flow gave back to the practice, and what became of
-- them, for slots on days in the period. `released` = given back through the supplier's API
-- plus written to the practice's work-list (queued); each released slot is in exactly one
-- bucket: `released_then_booked` (booked afterwards, confirmed or inferred),
-- `released_unused` (still free at a check within 2 hours of its start) or `released_unknown`
-- (not started yet, or last checked too early to tell). Uptake = then booked / released; its
-- upper bound counts every unknown slot as booked.
select
    coalesce(sum(released + queued), 0)::bigint as released,
    coalesce(sum(queued), 0)::bigint as released_queued,
    coalesce(sum(released_then_booked), 0)::bigint as released_then_booked,
    coalesce(sum(released_unused), 0)::bigint as released_unused,
    coalesce(sum(released + queued - released_then_booked - released_unused), 0)::bigint
        as released_unknown,
    coalesce(sum(refused), 0)::bigint as release_refused,
    coalesce(sum(skipped), 0)::bigint as release_skipped,
    coalesce(sum(failed_or_interrupted), 0)::bigint as release_failed,
    sum(released_then_booked) / nullif(sum(released + queued), 0) as release_uptake,
    (sum(released + queued) - sum(released_unused)) / nullif(sum(released + queued), 0)
        as release_uptake_upper
from mart_releases_daily
where slot_day between $first_day and $last_day
  and ($all_ods or list_contains($ods::varchar[], practice_ods))
