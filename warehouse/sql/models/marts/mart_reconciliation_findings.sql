-- Grain: one row per finding, as of the latest load: something the slot snapshots, the
-- booking organisations' logs and the practices' own answers do not agree on, with a
-- reason code. Rebuilt on every load (the per-load counts are kept in
-- meta.reconciliation_summary).
--   DISAPPEARED_UNCONFIRMED       reserved slot gone before its start, no confirming appointment
--   APPOINTMENT_UNKNOWN_SLOT      confirmed appointment on a slot never seen in any search
--   LIVE_APPOINTMENT_ON_FREE_SLOT confirmed appointment, but its slot still shows as free
--   DOUBLE_BOOKED_SLOT            two live appointments on one slot
--   SLOT_REAPPEARED               slot disappeared then showed free again (a cancellation)
--   LOGGED_NOT_FOUND              booking log names an appointment the practice does not have
--   LOG_PRACTICE_STATUS_MISMATCH  log and practice disagree on booked/cancelled
--   NHS111_SLOT_NOT_VISIBLE_TO_111  an NHS 111 slot type that 111's search never returned
--   BELOW_111_QUOTA               core day with fewer reserved 111 slots than the quota
with

slots as (
    select * from core.int_slot_states
),

appointments as (
    select * from core.fct_appointment
),

appointment_slots as (
    select practice_ods, unnest(slot_ids) as slot_id, appointment_id, status, confirmation, appointment_day
    from appointments
),

findings as (
    select practice_ods, 'DISAPPEARED_UNCONFIRMED' as reason_code, slot_id, null as appointment_id,
           slot_day as day,
           'reserved for ' || last_audience || ', gone at ' || strftime(disappeared_at, '%Y-%m-%dT%H:%M:%SZ')
           || ' before its start; removed from the book or booked without a log' as detail
    from slots
    where state = 'booked_inferred' and (ever_nhs111 or ever_hub)

    union all
    select a.practice_ods, 'APPOINTMENT_UNKNOWN_SLOT', a.slot_id, a.appointment_id, a.appointment_day,
           'confirmed appointment on a slot no search ever returned'
    from appointment_slots as a
    anti join core.fct_slot_history as h using (practice_ods, slot_id)
    where a.confirmation = 'confirmed'

    union all
    select practice_ods, 'LIVE_APPOINTMENT_ON_FREE_SLOT', slot_id, appointment_id, slot_day,
           'the practice confirms a booking but the slot was free at '
           || strftime(last_seen_at, '%Y-%m-%dT%H:%M:%SZ')
    from slots
    where confirmation = 'confirmed' and disappeared_at is null and last_seen_at > confirmed_booked_at

    union all
    select practice_ods, 'DOUBLE_BOOKED_SLOT', slot_id, string_agg(appointment_id, ',' order by appointment_id),
           any_value(appointment_day), count(*) || ' live appointments on one slot'
    from appointment_slots
    where status = 'booked'
    group by practice_ods, slot_id
    having count(*) > 1

    union all
    select practice_ods, 'SLOT_REAPPEARED', slot_id, null, slot_day,
           'freed again ' || reappeared_count || ' time(s) after disappearing'
    from slots
    where reappeared_count > 0

    union all
    select practice_ods, 'LOGGED_NOT_FOUND', null, appointment_id, appointment_day,
           'logged by ' || booking_org_ods || ' but Read Appointment found nothing'
    from appointments
    where confirmation = 'not_found'

    union all
    select practice_ods, 'LOG_PRACTICE_STATUS_MISMATCH', null, appointment_id, appointment_day,
           booking_org_ods || ' logs ' || logged_status || ', the practice says ' || confirmed_status
    from appointments
    where confirmed_status is not null and confirmed_status <> logged_status

    union all
    select practice_ods, 'NHS111_SLOT_NOT_VISIBLE_TO_111', slot_id, null, slot_day,
           'slot type "' || slot_type || '" was never returned to the NHS 111 provider''s search'
    from slots
    where slot_type ilike '%111%' and not ever_nhs111 and last_audience <> 'general'

    union all
    select practice_ods, 'BELOW_111_QUOTA', null, null, slot_day,
           nhs111_reserved_offered || ' reserved NHS 111 slot(s) offered against a quota of ' || quota
    from marts.mart_111_quota_daily
    where is_core_day and not meets_quota
)

select * from findings
order by practice_ods, reason_code, day, slot_id, appointment_id
