-- One row per (booking organisation, practice, appointment id): the latest export row that
-- mentions it. Appointment ids are unique only within a practice's system.
with

entries as (
    select * from raw.booking_log_entry
),

latest as (
    select *
    from entries
    qualify row_number() over (
        partition by booking_org_ods, practice_ods, appointment_id
        order by observed_at desc, fetched_at desc, load_id desc
    ) = 1
)

select
    ---------- ids
    booking_org_ods,
    appointment_id,
    practice_ods,
    slot_ids,
    patient_key,
    ---------- timestamps
    start_at,
    end_at,
    start_text,
    end_text,
    booked_at,
    cancelled_at,
    observed_at as logged_as_of,
    ---------- status
    status as logged_status,
    load_id
from latest
