-- Bookings leg: booking organisations' exports and Read Appointment confirmations.
-- Both are stored pseudonymised: patient references are keyed hashes made by the connector
-- (the key lives in settings, never here), and no free text about a patient is kept.

-- One row per (load, booking organisation): how fetching its export went.
create table meta.booking_log_fetch (
    load_id          varchar not null,
    booking_org_ods  varchar not null,
    status           varchar not null,          -- ok | failed
    fetched_at       timestamptz,
    http_status      integer,
    body_bytes       bigint,
    entries          integer not null default 0,
    message          varchar,
    next_step        varchar,
    primary key (load_id, booking_org_ods)
);

-- Every row of every export, as validated (patient reference replaced by patient_key).
create table raw.booking_log_entry (
    load_id          varchar not null,
    booking_org_ods  varchar not null,
    observed_at      timestamptz not null,
    fetched_at       timestamptz not null,
    appointment_id   varchar not null,
    practice_ods     varchar not null,
    slot_ids         varchar[] not null,
    start_text       varchar not null,
    end_text         varchar not null,
    start_at         timestamptz not null,
    end_at           timestamptz not null,
    booked_at        timestamptz not null,
    cancelled_at     timestamptz,
    status           varchar not null,
    patient_key      varchar
);

-- Every Read Appointment made to confirm a logged booking at its practice.
create table raw.gpc_appointment_read (
    load_id          varchar not null,
    practice_ods     varchar not null,
    appointment_id   varchar not null,
    observed_at      timestamptz not null,
    fetched_at       timestamptz not null,
    outcome          varchar not null,          -- found | not_found | failed
    http_status      integer,
    status           varchar,
    version_id       varchar,
    start_text       varchar,
    end_text         varchar,
    start_at         timestamptz,
    end_at           timestamptz,
    slot_ids         varchar[],
    booking_org_ods  varchar,
    patient_key      varchar,
    created_text     varchar,
    error            varchar
);

-- The booking organisations of the registry used by the latest load.
create table core.dim_booking_organisation (
    ods_code           varchar primary key,
    name               varchar not null,
    kind               varchar not null,         -- nhs111 | hub
    booking_log_format varchar not null,
    load_id            varchar not null
);
