-- Figure group: extended-access hub utilisation over finished days, same definitions as
-- fig_practice_utilisation.sql. Most hub slots are checked too early to tell, so the upper
-- bound matters: the true figure lies between `hub_utilisation` and `hub_utilisation_upper`.
select
    coalesce(sum(offered), 0)::bigint as hub_offered,
    coalesce(sum(booked), 0)::bigint as hub_booked,
    coalesce(sum(unused), 0)::bigint as hub_unused,
    coalesce(sum(unknown), 0)::bigint as hub_unknown,
    sum(booked) / nullif(sum(offered), 0) as hub_utilisation,
    (sum(booked) + sum(unknown)) / nullif(sum(offered), 0) as hub_utilisation_upper
from mart_hub_utilisation_hourly
where is_final
  and slot_day between $first_day and $last_day
  and ($all_ods or list_contains($ods::varchar[], hub_ods))
