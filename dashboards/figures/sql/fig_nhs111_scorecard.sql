-- Figure group: the NHS 111 quota scorecard, one row per practice over the period.
-- Grain: one row per practice in `mart_111_quota_daily` with a day in the period.
-- `offered_core_days` = slots reserved for NHS 111 offered on core days (Monday to Friday,
-- UK calendar); `quota` = the sum of the practice's daily quota over those core days (no quota
-- on weekends); `shortfall_slots` = the slots missing on the core days below quota;
-- `core_days_below` = core days on which fewer reserved slots were offered than the quota.
-- A practice not set up for NHS 111 direct booking (`accepts_111_booking` false) is not
-- counted as below quota: it cannot offer 111 slots at all, which is a set-up question.
-- Parameters: $first_day, $last_day (UK days, inclusive), $all_ods (no organisation filter)
-- and $ods (the ODS codes the filters allow).
with

in_period as (
    select *
    from mart_111_quota_daily
    where slot_day between $first_day and $last_day
      and ($all_ods or list_contains($ods::varchar[], practice_ods))
)

select
    practice_ods,
    any_value(practice_name) as practice_name,
    any_value(pcn_code) as pcn_code,
    any_value(sub_icb_code) as sub_icb_code,
    coalesce(bool_or(accepts_111_booking), false) as accepts_111_booking,
    count(*) filter (where is_core_day) as core_days,
    coalesce(sum(nhs111_reserved_offered) filter (where is_core_day), 0)::bigint as offered_core_days,
    coalesce(sum(quota) filter (where is_core_day), 0)::bigint as quota,
    coalesce(sum(greatest(quota - nhs111_reserved_offered, 0)) filter (where is_core_day), 0)::bigint
        as shortfall_slots,
    count(*) filter (where is_core_day and not meets_quota) as core_days_below
from in_period
group by practice_ods
order by practice_ods
