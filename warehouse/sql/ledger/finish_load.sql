update meta.load_ledger
set status = $status, completed_at = $completed_at, practices_ok = $ok,
    practices_failed = $failed, detail = $detail
where load_id = $load_id
