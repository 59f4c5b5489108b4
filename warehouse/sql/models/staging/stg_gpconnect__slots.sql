-- Typed slots of the responses in `loader_landed`: one row per Slot entry. The loader fills
-- that temporary table with one practice's landing file in raw.gpc_slot_search's shape
-- (load/land_slot_search.sql), so each bundle is parsed here once, and never re-read from
-- raw; to rebuild from raw, fill it with `select * from raw.gpc_slot_search where ...`.
-- Unknown elements and extensions are ignored; values that do not fit the expected shape
-- come out NULL and are rejected by the loader.
with

responses as (
    select * from loader_landed
),

parsed as (
    select
        responses.* exclude (body),
        json_transform(
            body,
            '{"entry": [{"resource": {
                "resourceType": "VARCHAR", "id": "VARCHAR", "meta": {"versionId": "VARCHAR"},
                "schedule": {"reference": "VARCHAR"}, "status": "VARCHAR",
                "start": "VARCHAR", "end": "VARCHAR",
                "serviceType": [{"text": "VARCHAR"}],
                "extension": [{"url": "VARCHAR", "valueCode": "VARCHAR"}]
            }}]}'
        ) as bundle
    from responses
),

entries as (
    select parsed.* exclude (bundle), unnest(bundle.entry).resource as r
    from parsed
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
        r.serviceType[1].text as slot_type,
        r.meta.versionId as version_id,
        load_id
    from entries
    where r.resourceType = 'Slot'
)

select * from renamed
