-- A practice's completed window units, one row per (stream, observation), newest first:
-- what `slotsync windows show` lists.
select
    w.stream, w.observed_at,
    string_agg(distinct w.load_id, ', ' order by w.load_id) as load_ids,
    string_agg(distinct coalesce(l.flow_name, '?'), ', ') as flow_names,
    count(distinct (w.window_start, w.window_end)) as windows,
    count(distinct w.filter_key) as filters,
    count(*) as units,
    sum(w.rows_loaded) as rows_loaded,
    min(w.window_start) as covers_from,
    max(w.window_end) as covers_to
from meta.sync_window as w
left join meta.load_ledger as l using (load_id)
where w.practice_ods = $practice_ods
group by w.stream, w.observed_at
order by w.observed_at desc, w.stream
limit $limit
