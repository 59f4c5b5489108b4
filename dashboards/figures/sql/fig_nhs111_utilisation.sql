-- Figure group: NHS 111 utilisation over finished days (every slot of the day has started).
-- `nhs111_offered_finished_days` = reserved 111 slots on finished days (including slots 111
-- booked before any capture saw them); `nhs111_booked` = booked by the 111 provider and
-- confirmed by the practice; `nhs111_unknown` = free at a last check more than 2 hours before
-- start. Utilisation is booked / offered; its upper bound counts every unknown slot as booked.
select
    coalesce(sum(offered), 0)::bigint as nhs111_offered_finished_days,
    coalesce(sum(booked_by_111), 0)::bigint as nhs111_booked,
    coalesce(sum(unused), 0)::bigint as nhs111_unused,
    coalesce(sum(unknown), 0)::bigint as nhs111_unknown,
    sum(booked_by_111) / nullif(sum(offered), 0) as nhs111_utilisation,
    (sum(booked_by_111) + sum(unknown)) / nullif(sum(offered), 0) as nhs111_utilisation_upper
from mart_111_utilisation_daily
where is_final
  and slot_day between $first_day and $last_day
  and ($all_ods or list_contains($ods::varchar[], practice_ods))
