-- Grain: one row per Location entry per slot-search response, i.e. per (practice, filter,
-- window, observed_at, location). Evaluated over `loader_landed` and replaced per unit like
-- stg_gpconnect__slots (see there). Address and telecom are not kept (sites' contact details
-- are not needed here, and the specification examples send them as objects or arrays).
with

responses as (
    select * from loader_landed
),

entries as (
    select
        practice_ods, filter_role, filter_key, window_start, window_end, observed_at, load_id,
        -- Only this resource type's entries are unnested (most entries are Slots).
        unnest(list_filter(entry, lambda e: e.resource.resourceType = 'Location')).resource as r
    from responses
),

locations as (
    select
        *,
        case json_type(r.identifier)
            when 'ARRAY' then r.identifier ->> '$[*]'
            when 'OBJECT' then [r.identifier::varchar]
        end as identifiers,
        case json_type(r.managingOrganization)
            when 'ARRAY' then r.managingOrganization -> '$[0]'
            else r.managingOrganization
        end as organization
    from entries
    where r.resourceType = 'Location'
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
        r.id as location_id,
        r.meta.versionId as version_id,
        ---------- attributes
        r.name as location_name,
        r.status as location_status,
        list_filter(identifiers, lambda i: i ->> '$.system' = 'https://fhir.nhs.uk/Id/ods-site-code')[1]
            ->> '$.value' as ods_site_code,
        nullif(
            regexp_extract(organization ->> '$.reference', '(^|/)Organization/([^/]+)$', 2), ''
        ) as managing_organization_id,
        load_id
    from locations
)

select * from renamed
