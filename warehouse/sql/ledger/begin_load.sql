insert into meta.load_ledger
    (load_id, flow_name, flow_run_id, as_of, started_at, status, holder_pid, holder_host, holder_started)
values ($load_id, $flow_name, $flow_run_id, $as_of, $started_at, 'running', $holder_pid, $holder_host,
        $holder_started)
on conflict (load_id) do update set
    status = 'running', started_at = excluded.started_at, holder_pid = excluded.holder_pid,
    holder_host = excluded.holder_host, holder_started = excluded.holder_started
