"""The one HTTP layer every outbound client uses (GP Connect, booking logs, supplier API).

- `errors`: the generic error tree and the one status -> error table.
- `transport`: the client factory, the size-capped send and the error built from a response
  (with `Retry-After` read as seconds or as an HTTP-date).
- `limits`: per-host/overall concurrency and requests-per-second pacing.
- `retry`: the one retry policy (tenacity).

Clients add only what is theirs: URLs, headers, and how a body names its error code.
"""
