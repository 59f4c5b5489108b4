-- The latest load recorded for a Prefect flow-run id or a load id ($ref), with its plan if any.
select l.load_id, l.flow_name, l.flow_run_id, l.as_of, l.status,
       p.mode, p.stream, p.plan_start, p.horizon_days, p.window_days, p.practices, p.rerun_of
from meta.load_ledger as l
left join meta.load_plan as p using (load_id)
where l.flow_run_id = $ref or l.load_id = $ref
order by l.started_at desc
limit 1
