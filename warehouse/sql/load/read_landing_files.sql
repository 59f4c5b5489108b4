-- Grain: one row per slot-search response (one landing-file line), for a batch of practices'
-- landing files. Parameters: $paths (the files) and $maximum_object_size (at least the
-- largest file, so any line fits; DuckDB sizes its read buffers by it, and buffers far
-- larger than the files cost time on every file); the batch table `loader_files` maps each
-- file to the practice it belongs to. The loader puts the result in the batch table
-- `loader_landed` (an in-memory database attached for the load), from which raw metadata
-- (raw.gpc_slot_search) and every staging model (models/staging/stg_gpconnect__*.sql) are
-- derived: each body is parsed here, once.
--
-- The bundle is typed on read (explicit columns + records=true + newline-delimited is
-- DuckDB's fast path). One struct covers the fields we use of Slot, Schedule, Location and
-- Practitioner; any other element is ignored. Elements that providers send as an object
-- where STU3 wants an array or the reverse (serviceType, serviceCategory, actor,
-- planningHorizon, managingOrganization, identifier) are typed JSON and normalised in the
-- staging models. `name` is Location.name; for a Practitioner it holds the name as JSON text
-- in this in-memory batch table only and is never stored.
select
    f.practice_ods,
    f.landing_file,
    j.meta.line as landing_line,
    j.meta.load_id as load_id,
    j.meta.practice_ods as named_practice_ods,
    j.meta.interaction as interaction,
    j.meta.filter_role as filter_role,
    j.meta.filter_key as filter_key,
    j.meta.window_start::timestamptz as window_start,
    j.meta.window_end::timestamptz as window_end,
    j.meta.observed_at::timestamptz as observed_at,
    j.meta.fetched_at::timestamptz as fetched_at,
    j.meta.http_status as http_status,
    j.meta.trace_id as trace_id,
    j.meta.body_bytes as body_bytes,
    j.bundle.resourceType as bundle_type,
    j.bundle.entry as entry
from read_json(
    $paths,
    format = 'newline_delimited',
    records = true,
    filename = true,
    maximum_object_size = $maximum_object_size,
    columns = {
        'meta': 'STRUCT(
            load_id VARCHAR, practice_ods VARCHAR, interaction VARCHAR, filter_role VARCHAR,
            filter_key VARCHAR, window_start VARCHAR, window_end VARCHAR, observed_at VARCHAR,
            fetched_at VARCHAR, http_status INTEGER, trace_id VARCHAR, body_bytes BIGINT,
            line INTEGER
        )',
        'bundle': 'STRUCT(
            resourceType VARCHAR,
            entry STRUCT(resource STRUCT(
                resourceType VARCHAR,
                id VARCHAR,
                meta STRUCT(versionId VARCHAR),
                schedule STRUCT(reference VARCHAR),
                status VARCHAR,
                "start" VARCHAR,
                "end" VARCHAR,
                serviceType JSON,
                extension STRUCT(url VARCHAR, valueCode VARCHAR, valueCodeableConcept JSON)[],
                actor JSON,
                serviceCategory JSON,
                planningHorizon JSON,
                name VARCHAR,
                managingOrganization JSON,
                identifier JSON
            ))[]
        )'
    }
) as j
join loader_files as f on f.landing_file = j.filename
