-- Grain: one row per practice per period its list size was in force (core.practice_list_size),
-- as [in_force_from, in_force_until) UK days. The first period reaches back indefinitely (the
-- earliest list size known stands for the days before it) and the last one forward. Marts
-- join a day to the period containing it, so a past day's quota uses the list size then.
select
    practice_ods,
    case
        when row_number() over (partition by practice_ods order by valid_from) = 1 then date '0001-01-01'
        else valid_from
    end as in_force_from,
    coalesce(lead(valid_from) over (partition by practice_ods order by valid_from), date '9999-12-31')
        as in_force_until,
    list_size,
    nhs111_daily_quota
from core.practice_list_size
