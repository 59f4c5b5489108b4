-- Grain: one row per practice with an open NHS 111 configuration drift episode at its latest
-- nightly observation. NHS guidance sends a practice to the GP Connect Appointment Checker
-- after a 111 booking fails; this finds the broken set-up first, from the differential
-- searches every nightly already runs (core.int_nhs111_search_days). At one observation a
-- practice drifts when, over the core days its searches covered:
--   NO_RESERVED_111_SLOTS   no slot reserved for NHS 111 at all;
--   BELOW_111_QUOTA         fewer reserved slots than its quota on 3 consecutive core days;
--   RESERVED_SLOTS_CHANGED  the reserved slots' slot types, or their delivery channels, have
--                           nothing in common with the previous nightly observation's (a
--                           day-to-day mix of channels is normal; a wholesale switch is not).
-- An episode is the unbroken run of drifting observations up to the latest one; `since` is
-- its first observation, and `is_new_episode` marks the observation that opened it (the one
-- night its alert is sent). Likely cause and who fixes it are stated per kind.
with

days as (
    select * from core.int_nhs111_search_days
),

params as (
    select 3 as below_quota_core_days
),

islands as (
    -- gaps and islands: consecutive below-quota core days share a group
    select
        *,
        row_number() over (partition by practice_ods, observed_at order by slot_day)
        - row_number() over (partition by practice_ods, observed_at, below_quota order by slot_day)
            as island
    from days
),

runs as (
    select practice_ods, observed_at, max(run_days) as longest_below_quota_run
    from (
        select practice_ods, observed_at, island, count(*) as run_days
        from islands
        where below_quota
        group by all
    )
    group by all
),

per_observation as (
    select
        practice_ods,
        observed_at,
        count(*) as core_days,
        any_value(quota) as quota,
        sum(nhs111_search_slots) as nhs111_search_slots,
        sum(general_search_slots) as general_search_slots,
        sum(reserved_slots) as reserved_slots,
        count(*) filter (where below_quota) as core_days_below_quota,
        list_sort(list_distinct(flatten(list(reserved_slot_types)))) as reserved_slot_types,
        list_sort(list_distinct(flatten(list(reserved_channels)))) as reserved_channels
    from days
    group by all
),

judged as (
    select
        o.*,
        coalesce(r.longest_below_quota_run, 0) as longest_below_quota_run,
        lag(o.reserved_slot_types) over w as previous_slot_types,
        lag(o.reserved_channels) over w as previous_channels,
        case
            when o.reserved_slots = 0 then 'NO_RESERVED_111_SLOTS'
            when coalesce(r.longest_below_quota_run, 0) >= (select below_quota_core_days from params)
                then 'BELOW_111_QUOTA'
            when len(lag(o.reserved_slot_types) over w) > 0
                and (not list_has_any(o.reserved_slot_types, lag(o.reserved_slot_types) over w)
                     or not list_has_any(o.reserved_channels, lag(o.reserved_channels) over w))
                then 'RESERVED_SLOTS_CHANGED'
        end as kind
    from per_observation as o
    left join runs as r using (practice_ods, observed_at)
    window w as (partition by o.practice_ods order by o.observed_at)
),

episodes as (
    select
        *,
        -- observations since the last one that did not drift: an episode's members share it
        count(*) filter (where kind is null) over (
            partition by practice_ods order by observed_at rows between unbounded preceding and current row
        ) as episode,
        row_number() over (partition by practice_ods order by observed_at desc) as newest_first
    from judged
),

open_episodes as (
    select
        *,
        -- the non-drifting observation that closed the previous episode shares the group
        min(observed_at) filter (where kind is not null) over (partition by practice_ods, episode) as since
    from episodes
    qualify newest_first = 1 and kind is not null
),

final as (
    select
        e.practice_ods,
        p.practice_name,
        p.nhs111_provider_ods,
        e.kind,
        e.since,
        e.observed_at as latest_observed_at,
        e.since = e.observed_at as is_new_episode,
        e.core_days,
        e.quota,
        e.reserved_slots,
        e.core_days_below_quota,
        e.longest_below_quota_run,
        e.nhs111_search_slots,
        e.general_search_slots,
        'over ' || e.core_days || ' core day(s) the NHS 111 search (' || coalesce(p.nhs111_provider_ods, '?')
            || ') returned ' || e.nhs111_search_slots || ' slot(s) and the unfiltered search '
            || e.general_search_slots || '; ' || e.reserved_slots || ' reserved for 111 (quota '
            || e.quota || ' a day, below it on ' || e.core_days_below_quota || ' day(s))'
            || case
                when e.kind = 'RESERVED_SLOTS_CHANGED'
                    then '; slot types ' || array_to_string(e.previous_slot_types, ', ') || ' -> '
                        || array_to_string(e.reserved_slot_types, ', ') || ', channels '
                        || array_to_string(e.previous_channels, ', ') || ' -> '
                        || array_to_string(e.reserved_channels, ', ')
                else ''
            end as evidence,
        case e.kind
            when 'NO_RESERVED_111_SLOTS' then 'the practice''s NHS 111 slot reservation (slot type or '
                || 'session set-up) was switched off, changed or not rolled forward in its clinical system'
            when 'BELOW_111_QUOTA' then 'too few sessions carry NHS 111 reserved slots for the quota '
                || '(rota change, leave, a template that was not rolled forward)'
            else 'the reserved slots'' slot type or delivery channel changed, so the 111 provider''s '
                || 'booking rules may no longer match them'
        end as likely_cause,
        case e.kind
            when 'NO_RESERVED_111_SLOTS' then 'practice (with its clinical system supplier if the set-up looks right)'
            when 'BELOW_111_QUOTA' then 'practice'
            else 'practice, then the 111 provider if its booking rules need the new type'
        end as who_fixes
    from open_episodes as e
    join core.dim_practice as p using (practice_ods)
)

select * from final
order by practice_ods
