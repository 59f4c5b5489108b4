-- Grain: one row per appointment a booking organisation logged (practice, appointment id).
-- `confirmation` says what the practice's own system said when we read it back:
--   confirmed (status booked), cancelled (status cancelled), not_found (404 at the practice),
--   unconfirmed (not read yet, or the read failed).
with

logged as (
    select * from staging.stg_booking_log__appointments
),

reads as (
    select * from staging.stg_gpconnect__appointment_reads
),

organisations as (
    select ods_code, kind from core.dim_booking_organisation
),

joined as (
    select
        logged.practice_ods,
        logged.appointment_id,
        logged.booking_org_ods,
        coalesce(organisations.kind, 'unknown') as booked_by_kind,
        logged.slot_ids,
        logged.patient_key,
        logged.start_at,
        logged.end_at,
        (logged.start_at at time zone 'Europe/London')::date as appointment_day,
        logged.booked_at,
        logged.cancelled_at,
        logged.logged_status,
        reads.read_outcome,
        reads.confirmed_status,
        reads.version_id,
        reads.confirmed_as_of,
        case
            when reads.read_outcome = 'not_found' then 'not_found'
            when reads.confirmed_status = 'cancelled' then 'cancelled'
            when reads.confirmed_status is not null then 'confirmed'
            else 'unconfirmed'
        end as confirmation,
        -- The practice's answer wins over the log when both exist.
        coalesce(reads.confirmed_status, logged.logged_status) as status
    from logged
    left join reads
        on reads.practice_ods = logged.practice_ods
        and reads.appointment_id = logged.appointment_id
    left join organisations
        on organisations.ods_code = logged.booking_org_ods
)

select * from joined
order by practice_ods, start_at, appointment_id
