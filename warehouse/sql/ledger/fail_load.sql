-- End a load that stopped before completing (an exception, a cancellation, SIGTERM): failed,
-- with the reason in words. Only a load still running: a completed one is never rewritten.
update meta.load_ledger
set status = 'failed', completed_at = $completed_at, detail = $detail
where load_id = $load_id and status = 'running'
