-- List size and NHS 111 daily quota as of each day. core.dim_practice holds the registry of
-- the latest load only, so a quota figure for a past day used today's list size. Each row here
-- is a practice's list size (and its quota, max(1, floor(list_size / 3000))) in force from a UK
-- day, the day of the load whose registry first carried it, until the practice's next row;
-- warehouse/sql/ledger/record_list_sizes.sql adds a row when a load's registry changes it.
-- Marts read a day's figure through core.int_list_size_in_force (days before a practice's
-- first row use that row: the earliest list size known).
create table core.practice_list_size (
    practice_ods        varchar not null,
    valid_from          date not null,          -- UK calendar day
    list_size           integer not null,
    nhs111_daily_quota  integer not null,
    load_id             varchar not null,       -- the load whose registry carried it
    primary key (practice_ods, valid_from)
);

-- A warehouse upgraded from an earlier version knows only the current registry: it becomes
-- each practice's first row, from the day of the load that wrote it.
insert into core.practice_list_size
select
    p.practice_ods,
    coalesce((l.as_of at time zone 'Europe/London')::date, current_date),
    p.list_size,
    p.nhs111_daily_quota,
    p.load_id
from core.dim_practice as p
left join meta.load_ledger as l using (load_id)
where p.kind = 'practice';
