-- Loads still marked running, oldest first, with the process that holds each (null before V010).
select load_id, flow_name, flow_run_id, started_at, holder_pid, holder_host, holder_started
from meta.load_ledger
where status = 'running'
order by started_at
