-- One row per slot in core.fct_slot_history with what we can say about it now:
-- its live appointment (if a booking organisation logged one and the practice confirmed it),
-- whether it disappeared before its start (inferred booking or removal), and a state:
--   booked_confirmed  a live appointment logged by a booking organisation, confirmed
--   booked_inferred   disappeared from the free-slot searches before its start
--   unused            started while still free at a check within 2 hours of its start
--   unknown           started while free at the last check, but that check was earlier
--                     than 2 hours before its start: a late booking cannot be ruled out
--   free              not started yet, free at the last check
-- The as-of instant is the practice's latest completed observation.
with

history as (
    select * from core.fct_slot_history
),

practice_as_of as (
    select w.practice_ods, max(w.observed_at) as as_of
    from meta.sync_window as w
    -- A quarantined observation is not what the history shows (warehouse/quality.py).
    anti join meta.quarantine as q
        on q.practice_ods = w.practice_ods and q.stream = w.stream and q.load_id = w.load_id
    group by all
),

appointment_slots as (
    select
        practice_ods,
        unnest(slot_ids) as slot_id,
        appointment_id,
        booked_by_kind,
        booking_org_ods,
        status,
        confirmation,
        booked_at,
        cancelled_at
    from core.fct_appointment
),

live_appointments as (
    select *
    from appointment_slots
    where status = 'booked'
    qualify row_number() over (partition by practice_ods, slot_id order by booked_at desc) = 1
),

states as (
    select
        h.*,
        p.as_of,
        a.appointment_id,
        a.booked_by_kind as confirmed_booked_by_kind,
        a.booking_org_ods as confirmed_booking_org_ods,
        a.confirmation,
        a.booked_at as confirmed_booked_at,
        h.disappeared_at is not null and h.disappeared_at < h.start_at as disappeared_before_start,
        (h.start_at at time zone 'Europe/London')::date as slot_day,
        extract('hour' from (h.start_at at time zone 'Europe/London'))::integer as slot_hour,
        h.start_at <= p.as_of as start_passed
    from history as h
    left join practice_as_of as p using (practice_ods)
    left join live_appointments as a using (practice_ods, slot_id)
)

select
    *,
    case
        when confirmation = 'confirmed' then 'booked_confirmed'
        when disappeared_before_start then 'booked_inferred'
        when start_passed and last_checked_at >= start_at - interval 2 hour then 'unused'
        when start_passed then 'unknown'
        else 'free'
    end as state
from states
