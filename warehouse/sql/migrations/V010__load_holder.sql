-- Who holds a running load: the process that began it (pid, host, and its start as
-- "<boot id>:<start ticks>" where the platform tells it; common/holder.py). A load left
-- `running` by a process that was killed without cleanup is then recognisable by
-- `slotsync status --check`: same host, and that pid is gone or now names another process.
-- Nullable: loads recorded before this migration have no holder.
alter table meta.load_ledger add column holder_pid integer;
alter table meta.load_ledger add column holder_host varchar;
alter table meta.load_ledger add column holder_started varchar;
