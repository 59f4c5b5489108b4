-- Loads among $load_ids observed before $cutoff whose landing folders may be deleted: the
-- load completed, or a re-run of it did. Running, failed-unrepaired and unknown loads stay.
select l.load_id
from meta.load_ledger as l
where l.load_id in (select unnest($load_ids::varchar[]))
  and l.as_of < $cutoff
  and (
      l.status = 'completed'
      or exists (
          select 1
          from meta.load_plan as p
          join meta.load_ledger as r on r.load_id = p.load_id
          where p.rerun_of = l.load_id and r.status = 'completed'
      )
  )
