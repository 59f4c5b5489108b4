-- The benchmark's staged night (lab/bench_gate.py, `slotsync bench`): practices
-- J82000.. of one running load, each with 4 weekly windows of `synthetic_slots_per_window`
-- ten-minute free slots, staged as the loader leaves them (sync windows, locations, schedules,
-- slots). Every 50th practice from the 2nd has a defect for the gate to quarantine: one slot of
-- an unknown status, slot ids a FHIR id refuses, or every slot ending before it starts.
create temp table synthetic_practices as
select i, 'J' || (82000 + i)::varchar as ods from range(getvariable('synthetic_practices')) as t(i);

insert into meta.load_ledger (load_id, flow_name, as_of, started_at, status)
values ('synthetic-load', 'nightly_sync', timestamptz '2026-01-05 02:00:00+00',
        timestamptz '2026-01-05 02:00:00+00', 'running');

insert into core.dim_practice (practice_ods, practice_name, kind, list_size, clinical_system,
    accepts_111_booking, nhs111_provider_ods, booking_hubs, sub_icb_code, pcn_code, nhs111_daily_quota, load_id)
select ods, 'Surgery', 'practice', 9000, 'EMIS Web', false, null, [], '10V', null, 3, 'synthetic-load'
from synthetic_practices;

create temp table synthetic_windows as
select p.i, p.ods, k, timestamptz '2026-01-05 00:00:00+00' + to_days(7 * k) as ws,
       timestamptz '2026-01-05 00:00:00+00' + to_days(7 * k + 7) as we
from synthetic_practices as p, range(4) as t(k);

insert into meta.sync_window
select ods, 'slots', 'none', ws, we, timestamptz '2026-01-05 02:00:00+00', 'synthetic-load',
       getvariable('synthetic_slots_per_window'), now(), null
from synthetic_windows order by ods;

insert into staging.stg_gpconnect__locations
select ods, 'general', 'none', ws, we, timestamptz '2026-01-05 02:00:00+00', 'L1', '1', 'Main', 'active',
       null, 'O1', 'synthetic-load'
from synthetic_windows order by ods;

insert into staging.stg_gpconnect__schedules
select ods, 'general', 'none', ws, we, timestamptz '2026-01-05 02:00:00+00', 'S1', '1', 'L1', 'P1', 'GP',
       'R0260', 'GP', ws, we, 'synthetic-load'
from synthetic_windows order by ods;

insert into staging.stg_gpconnect__slots
select ods, 'general', 'none', ws, we, timestamptz '2026-01-05 02:00:00+00',
       case when i % 50 = 2 and j % 2 = 0 then 'x y' || j::varchar else (k * 100000 + j)::varchar end,
       'S1',
       ws + to_minutes(10 * j + 1),
       case when i % 50 = 3 then ws + to_minutes(10 * j - 4) else ws + to_minutes(10 * j + 11) end,
       strftime(ws + to_minutes(10 * j + 1), '%Y-%m-%dT%H:%M:%S') || '+00:00',
       strftime(case when i % 50 = 3 then ws + to_minutes(10 * j - 4) else ws + to_minutes(10 * j + 11) end,
                '%Y-%m-%dT%H:%M:%S') || '+00:00',
       case when i % 50 = 1 and k = 0 and j = 5 then 'booked' else 'free' end,
       'In-person', 'Routine', '1', 'synthetic-load'
from synthetic_windows, range(getvariable('synthetic_slots_per_window')) as t(j)
order by ods, ws;

drop table synthetic_windows;
drop table synthetic_practices;
