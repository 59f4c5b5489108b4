-- Every registry practice as `slotsync status` shows it. Freshness and the latest outcome come
-- from the pipeline-freshness mart's definition (models/marts/mart_pipeline_freshness.sql),
-- which the caller binds live over the ledger as `mart_pipeline_freshness`: the dashboard's
-- Data health page reads the same definition, so status and dashboard cannot disagree. The
-- latest run's failure detail (interaction, HTTP status, supplier text, flow run) is added here.
select
    f.practice_ods,
    f.practice_name,
    f.kind,
    f.last_observed_at as last_sync_at,
    f.last_nightly_at,
    f.latest_status,
    f.latest_load_id as load_id,
    l.flow_run_id,
    l.as_of,
    r.interaction,
    r.http_status,
    r.error_class,
    r.message,
    r.next_step
from mart_pipeline_freshness as f
left join meta.practice_run as r
    on r.load_id = f.latest_load_id and r.practice_ods = f.practice_ods
left join meta.load_ledger as l
    on l.load_id = f.latest_load_id
order by f.practice_ods
