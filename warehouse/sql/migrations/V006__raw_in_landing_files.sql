-- Raw bodies live in the landing files, not in DuckDB; slot history is folded once per load;
-- schedules, locations and practitioners are staged beside the slots.
--
-- 1. raw.gpc_slot_search keeps one metadata row per response and names the landing file and
--    line that hold its bytes exactly as received (warehouse/landing.py). Stored bodies made
--    every automatic checkpoint recompress the whole, ever-growing table. Existing rows keep
--    their metadata; their bodies are the lines of their loads' landing files
--    (`<data_dir>/landing/<load_id>/<ODS>.ndjson`, written before any body was stored), which
--    `Warehouse.raw_body` finds by (filter, window) when no line is recorded.
alter table raw.gpc_slot_search drop column body;
alter table raw.gpc_slot_search add column landing_file varchar;
alter table raw.gpc_slot_search add column landing_line integer;

-- 2. When each completed unit's observation was folded into core.fct_slot_history. The
--    fold runs once per load over every complete observation not folded yet, so a load that
--    died between a practice's commit and the fold is healed by the next one. Observations
--    of earlier versions were folded in their practice's transaction.
alter table meta.sync_window add column folded_at timestamptz;
update meta.sync_window set folded_at = completed_at;

-- 3. Staged Schedule, Location and Practitioner entries of each response, replaced per unit
--    (practice, filter, window, observed_at) like the slots. Practitioner names and genders
--    are staff data and are not kept: id, SDS user id and SDS role profile id only.
create table staging.stg_gpconnect__schedules (
    practice_ods                varchar not null,
    filter_role                 varchar not null,
    filter_key                  varchar not null,
    window_start                timestamptz not null,
    window_end                  timestamptz not null,
    observed_at                 timestamptz not null,
    schedule_id                 varchar,
    version_id                  varchar,
    location_id                 varchar,
    practitioner_id             varchar,
    service_category            varchar,
    practitioner_role_code      varchar,
    practitioner_role_display   varchar,
    planning_horizon_start_at   timestamptz,
    planning_horizon_end_at     timestamptz,
    load_id                     varchar not null
);

create table staging.stg_gpconnect__locations (
    practice_ods              varchar not null,
    filter_role               varchar not null,
    filter_key                varchar not null,
    window_start              timestamptz not null,
    window_end                timestamptz not null,
    observed_at               timestamptz not null,
    location_id               varchar,
    version_id                varchar,
    location_name             varchar,
    location_status           varchar,
    ods_site_code             varchar,
    managing_organization_id  varchar,
    load_id                   varchar not null
);

create table staging.stg_gpconnect__practitioners (
    practice_ods         varchar not null,
    filter_role          varchar not null,
    filter_key           varchar not null,
    window_start         timestamptz not null,
    window_end           timestamptz not null,
    observed_at          timestamptz not null,
    practitioner_id      varchar,
    sds_user_id          varchar,
    sds_role_profile_id  varchar,
    load_id              varchar not null
);
