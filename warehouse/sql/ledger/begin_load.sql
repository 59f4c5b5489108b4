insert into meta.load_ledger (load_id, flow_name, flow_run_id, as_of, started_at, status)
values ($load_id, $flow_name, $flow_run_id, $as_of, $started_at, 'running')
on conflict (load_id) do update set status = 'running', started_at = excluded.started_at
