-- Grain: one row per Practitioner entry per slot-search response, i.e. per (practice,
-- filter, window, observed_at, practitioner). Evaluated over `loader_landed` and replaced
-- per unit like stg_gpconnect__slots (see there).
-- Names and gender are staff data and are never kept: only the logical id, the SDS user id
-- and the SDS role profile id. The clinical job role comes from the Schedules that name the
-- practitioner (core.dim_practitioner). `identifier` may be an array or one object.
with

responses as (
    select * from loader_landed
),

entries as (
    select
        practice_ods, filter_role, filter_key, window_start, window_end, observed_at, load_id,
        -- Only this resource type's entries are unnested (most entries are Slots).
        unnest(list_filter(entry, lambda e: e.resource.resourceType = 'Practitioner')).resource as r
    from responses
),

practitioners as (
    select
        practice_ods, filter_role, filter_key, window_start, window_end, observed_at, load_id,
        r.id as practitioner_id,
        case json_type(r.identifier)
            when 'ARRAY' then r.identifier ->> '$[*]'
            when 'OBJECT' then [r.identifier::varchar]
        end as identifiers
    from entries
    where r.resourceType = 'Practitioner'
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
        practitioner_id,
        list_filter(identifiers, lambda i: i ->> '$.system' = 'https://fhir.nhs.uk/Id/sds-user-id')[1]
            ->> '$.value' as sds_user_id,
        list_filter(identifiers, lambda i: i ->> '$.system' = 'https://fhir.nhs.uk/Id/sds-role-profile-id')[1]
            ->> '$.value' as sds_role_profile_id,
        load_id
    from practitioners
)

select * from renamed
