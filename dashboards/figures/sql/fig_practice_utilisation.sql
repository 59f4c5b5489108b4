-- Figure group: GP practice slot utilisation over finished days, all audiences.
-- `practice_offered` = distinct slots seen free; `practice_booked` = confirmed or inferred;
-- `practice_unused` = still free at a check within 2 hours of start; `practice_unknown` = the
-- rest (last check earlier). Utilisation lies between booked / offered and the upper bound
-- (booked + unknown) / offered.
select
    coalesce(sum(offered), 0)::bigint as practice_offered,
    coalesce(sum(booked_confirmed + booked_inferred), 0)::bigint as practice_booked,
    coalesce(sum(unused), 0)::bigint as practice_unused,
    coalesce(sum(unknown), 0)::bigint as practice_unknown,
    sum(booked_confirmed + booked_inferred) / nullif(sum(offered), 0) as practice_utilisation,
    (sum(booked_confirmed + booked_inferred) + sum(unknown)) / nullif(sum(offered), 0)
        as practice_utilisation_upper
from mart_slot_utilisation_daily
where is_final and kind = 'practice'
  and slot_day between $first_day and $last_day
  and ($all_ods or list_contains($ods::varchar[], practice_ods))
