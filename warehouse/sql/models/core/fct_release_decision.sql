-- Grain: one row per (practice, slot, policy window) release decision key: the latest
-- decision the release flow recorded for it in audit.release_decision (dry runs excluded
-- unless nothing else was ever decided for the key).
with

decisions as (
    select * from audit.release_decision
),

latest as (
    select *
    from decisions
    qualify row_number() over (
        partition by idempotency_key
        order by (not dry_run) desc, (outcome <> 'attempting') desc, decided_at desc, decision_id desc
    ) = 1
)

select
    practice_ods,
    slot_id,
    idempotency_key,
    slot_start_at,
    (slot_start_at at time zone 'Europe/London')::date as slot_day,
    policy_name,
    due_at,
    releaser,
    dry_run,
    outcome,
    reason,
    decided_at,
    completed_at
from latest
