-- The load's reconciliation findings counted by practice and reason, kept per load.
insert or replace into meta.reconciliation_summary
select $load_id, practice_ods, reason_code, count(*)
from marts.mart_reconciliation_findings
group by all
