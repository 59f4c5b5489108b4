select load_id, as_of from meta.load_ledger where status = 'completed'
order by as_of desc, completed_at desc limit 1
