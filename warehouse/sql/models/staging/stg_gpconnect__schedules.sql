-- Grain: one row per Schedule entry per slot-search response, i.e. per (practice, filter,
-- window, observed_at, schedule). Evaluated over `loader_landed` and replaced per unit like
-- stg_gpconnect__slots (see there). A Schedule names its Location and, for clinicians'
-- sessions, its Practitioner among its actors; its job role is the GP Connect
-- PractitionerRole extension (an SDS job role code such as R0260).
-- Lenient where the specification examples are: `actor` and `serviceCategory` may be an
-- object or an array, and the role's `coding` likewise.
with

responses as (
    select * from loader_landed
),

entries as (
    select
        practice_ods, filter_role, filter_key, window_start, window_end, observed_at, load_id,
        -- Only this resource type's entries are unnested (most entries are Slots).
        unnest(list_filter(entry, lambda e: e.resource.resourceType = 'Schedule')).resource as r
    from responses
),

schedules as (
    -- Each JSON element is parsed once: several paths are extracted together.
    select
        *,
        -- Every actor reference, whether `actor` came as an array or as one object.
        case json_type(r.actor)
            when 'ARRAY' then r.actor ->> '$[*].reference'
            when 'OBJECT' then [r.actor ->> '$.reference']
        end as actor_references,
        json_extract_string(
            r.serviceCategory, ['$.text', '$.coding[0].display', '$[0].text', '$[0].coding[0].display']
        ) as category,
        json_extract_string(
            list_filter(
                r.extension,
                lambda x: x.url = 'https://fhir.nhs.uk/STU3/StructureDefinition/Extension-GPConnect-PractitionerRole-1'
            )[1].valueCodeableConcept,
            ['$.coding[0].code', '$.coding.code', '$.coding[0].display', '$.coding.display']
        ) as role,
        json_extract_string(r.planningHorizon, ['$.start', '$.end']) as horizon
    from entries
    where r.resourceType = 'Schedule'
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
        r.id as schedule_id,
        r.meta.versionId as version_id,
        -- Relative (Location/17) or absolute (https://.../Location/17) references.
        nullif(regexp_extract(
            list_filter(actor_references, lambda a: regexp_matches(a, '(^|/)Location/[^/]+$'))[1],
            '(^|/)Location/([^/]+)$', 2
        ), '') as location_id,
        nullif(regexp_extract(
            list_filter(actor_references, lambda a: regexp_matches(a, '(^|/)Practitioner/[^/]+$'))[1],
            '(^|/)Practitioner/([^/]+)$', 2
        ), '') as practitioner_id,
        ---------- attributes
        coalesce(category[1], category[2], category[3], category[4]) as service_category,
        coalesce(role[1], role[2]) as practitioner_role_code,
        coalesce(role[3], role[4]) as practitioner_role_display,
        try_cast(horizon[1] as timestamptz) as planning_horizon_start_at,
        try_cast(horizon[2] as timestamptz) as planning_horizon_end_at,
        load_id
    from schedules
)

select * from renamed
