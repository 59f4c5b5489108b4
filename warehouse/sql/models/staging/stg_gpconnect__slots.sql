-- Grain: one row per Slot entry per slot-search response, i.e. per (practice, filter,
-- window, observed_at, slot). The loader evaluates this model over `loader_landed`, the
-- typed landing lines of a batch of practices (load/read_landing_files.sql), and replaces
-- each unit (practice, filter, window, observed_at) of staging.stg_gpconnect__slots with its
-- rows in that practice's transaction. To rebuild from the raw archive, fill `loader_landed`
-- from the landing files named in raw.gpc_slot_search.
-- Unknown elements and extensions are ignored; values that do not fit the expected shape
-- come out NULL and are rejected by the loader (missing id, schedule, start or end).
with

responses as (
    select * from loader_landed
),

entries as (
    select
        practice_ods, filter_role, filter_key, window_start, window_end, observed_at, load_id,
        unnest(entry).resource as r
    from responses
),

renamed as (
    select
        ---------- unit keys
        practice_ods,
        filter_role,
        filter_key,
        window_start,
        window_end,
        observed_at,
        ---------- ids
        r.id as slot_id,
        nullif(regexp_extract(r.schedule.reference, '^Schedule/(.+)$', 1), '') as schedule_id,
        ---------- timestamps (UTC, with the provider's original text kept)
        try_cast(r.start as timestamptz) as start_at,
        try_cast(r."end" as timestamptz) as end_at,
        r.start as start_text,
        r."end" as end_text,
        ---------- attributes
        r.status,
        list_filter(
            r.extension,
            lambda x: x.url = 'https://fhir.nhs.uk/STU3/StructureDefinition/Extension-GPConnect-DeliveryChannel-2'
        )[1].valueCode as delivery_channel,
        -- serviceType is 0..* (an array); a single object is accepted too.
        coalesce(r.serviceType ->> '$[0].text', r.serviceType ->> '$.text') as slot_type,
        r.meta.versionId as version_id,
        load_id
    from entries
    where r.resourceType = 'Slot'
)

select * from renamed
