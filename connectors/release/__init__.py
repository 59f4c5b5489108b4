"""Giving unused NHS 111 slots back to practices: one interface, two ways of doing it.

GP Connect can read slots but never change them, so releasing a 111 reservation is a
supplier-side action (the practice edits the slot's restriction in EMIS Web or SystmOne).
The release flow decides *which* slots to give back; a `SlotReleaser` carries it out:

- `SupplierApiReleaser` drives a supplier slot-management API (the sandbox's
  `/_supplier/{ODS}/Slot/{id}`). Each release sends the version seen at the live re-check
  as `If-Match`, so a slot that changed since then is refused rather than released, and a
  caller-chosen idempotency key, so a retried release is applied at most once.
- `WorkListReleaser` is for systems with no write API. It writes per-practice, per-UK-day
  instructions for practice staff (`<out_dir>/<YYYY-MM-DD>/<ODS>.csv` and `.md`). Requests
  and work-list rows carry the same decision id and idempotency key as the audit table.

Every outbound call goes through the shared HTTP layer (`connectors.http`: the size cap,
the one error table, the one retry policy). So a releaser fails the same way a GP Connect
call does, with the same generic error classes. `release` reports refusals and failures
as a `ReleaseResult` and does not raise them: a run records every decision's outcome.
Modules: `model` (request, outcome, result, the `SlotReleaser` interface), `supplier_api`,
`worklist`, and `releasers` (`releaser_for` for one practice, `Releasers` for a whole run with
one HTTP pool, chosen by `practice.release_policy.releaser`).
"""
