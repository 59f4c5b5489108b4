-- One row per (practice, appointment): the latest Read Appointment that got an answer.
with

reads as (
    select * from raw.gpc_appointment_read where outcome in ('found', 'not_found')
),

latest as (
    select *
    from reads
    qualify row_number() over (
        partition by practice_ods, appointment_id
        order by observed_at desc, fetched_at desc, load_id desc
    ) = 1
)

select
    practice_ods,
    appointment_id,
    outcome as read_outcome,
    status as confirmed_status,
    version_id,
    start_at,
    end_at,
    slot_ids,
    booking_org_ods,
    observed_at as confirmed_as_of,
    load_id
from latest
