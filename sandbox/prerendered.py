"""A sandbox mode for scale runs: slot-search bundles rendered once, then served from memory.

The live sandbox simulates every practice's book and renders each bundle on request, on one
Python core: at England scale (6,300 practices, ~38,000 searches a night) it would measure
itself, not the pipeline. This mode renders with the same simulation and renderer, but only
for a few *template* rows per (kind, clinical system, NHS 111) group, chosen at evenly spaced
ranks of list size (member population for hubs), for every (filter, window) of the night at
start-up. Every other row is served its template's bundle with the template's ODS code
replaced by its own: same size, same slot counts for its size band, the supplier's dialect.
So per request the server only looks a dict up and replaces a few bytes.

Not simulated here: booking activity over time (the clock is fixed at `start`), faults,
Spine header and JWT checks, and every interaction but slot search; booking-log exports are
served empty. `--latency p50=1s,p95=3s` delays each search as a provider would
(`sandbox.latency`). `GET /_sandbox/stats` reports what the server itself cost (render seconds,
CPU seconds, peak RSS, requests and bytes served), so a benchmark can subtract it.

    python -m sandbox.prerendered --port 0 --start 2026-03-23T02:00:00+00:00 \
        --practices 6300 --write-registry var/england.yaml
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import resource
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from common.clock import SimulatedClock
from common.uktime import parse_fhir_datetime
from connectors.gpconnect.searches import search_filters
from connectors.gpconnect.spine import FHIR_JSON, SearchFilter
from connectors.gpconnect.windows import SearchWindow, plan_windows
from connectors.registry import Practice, Registry
from sandbox.england import ENGLAND_PRACTICES, england_estate, sample_estate
from sandbox.errors import SandboxError
from sandbox.estate import DEFAULT_SEED
from sandbox.fhir import PracticeRenderer, operation_outcome
from sandbox.latency import DEFAULT_LATENCY_SEED, LatencyModel, ProviderLatency, parse_latency
from sandbox.slot_search import SlotQuery, parse_slot_query
from sandbox.state import BookingLogRow, SandboxState

DEFAULT_TEMPLATES_PER_GROUP = 12
DEFAULT_HORIZON_DAYS = 28
DEFAULT_WINDOW_DAYS = 14
READY_LINE = "sandbox GP Connect estate on "  # what launchers wait for, as for the live sandbox
_BOOKING_LOG_FIELDS = [field.name for field in dataclasses.fields(BookingLogRow)]


@dataclass
class ServerCost:
    """What serving cost the sandbox itself, so a benchmark can tell it from the client's cost."""

    templates: int = 0
    renders: int = 0
    render_s: float = 0.0
    requests: int = 0
    bytes_served: int = 0

    def as_json(self) -> dict[str, float | int]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "templates": self.templates,
            "renders": self.renders,
            "render_s": round(self.render_s, 3),
            "requests": self.requests,
            "bytes_served": self.bytes_served,
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
            "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        }


class PrerenderedEstate:
    """Slot-search bundles per (template, query), and which template serves which row."""

    def __init__(
        self,
        registry: Registry,
        *,
        start: datetime,
        seed: int = DEFAULT_SEED,
        templates_per_group: int = DEFAULT_TEMPLATES_PER_GROUP,
    ) -> None:
        self.registry = registry
        self.by_ods = registry.by_ods()
        self.state = SandboxState(registry, clock=SimulatedClock(start), seed=seed)
        self.template_of = choose_templates(registry, templates_per_group)
        self.cost = ServerCost(templates=len(set(self.template_of.values())))
        self._bundles: dict[tuple[str, SlotQuery], bytes] = {}
        self._renderers: dict[str, PracticeRenderer] = {}

    def prerender(self, horizon_days: int, window_days: int = DEFAULT_WINDOW_DAYS) -> None:
        """Render every template's differential searches for the night's windows."""
        windows = plan_windows(self.state.started_at, horizon_days, window_days)
        for template in sorted(set(self.template_of.values())):
            practice = self.by_ods[template]
            for window in windows:
                for search_filter in _search_filters(practice):
                    self.bundle(template, parse_slot_query(slot_params(window, search_filter)))

    def slot_search(self, ods: str, params: Iterable[tuple[str, str]]) -> bytes:
        """The bundle `ods` answers this search with (its template's, under its own ODS code)."""
        practice = self.by_ods.get(ods)
        if practice is None:
            raise SandboxError(404, "ORGANISATION_NOT_FOUND", f"no GP Connect provider for ODS code {ods}")
        query = parse_slot_query(params)
        template = self.template_of[ods]
        if template != ods:
            # The searchFilter names this row's hub or 111 provider: ask as the template's.
            aliases = _aliases(practice, self.by_ods[template])
            query = dataclasses.replace(
                query, ods_codes=frozenset(aliases.get(code, code) for code in query.ods_codes)
            )
        body = self.bundle(template, query)
        if template != ods:
            body = body.replace(template.encode(), ods.encode())
        self.cost.requests += 1
        self.cost.bytes_served += len(body)
        return body

    def bundle(self, template: str, query: SlotQuery) -> bytes:
        key = (template, query)
        body = self._bundles.get(key)
        if body is None:
            began = time.perf_counter()
            slots = self.state.search_slots(
                template, query.start, query.end, org_types=query.org_types, ods_codes=query.ods_codes
            )
            renderer = self._renderers.get(template)
            if renderer is None:
                renderer = self._renderers[template] = PracticeRenderer(self.state.profile(template))
            body = self._bundles[key] = renderer.slot_bundle(slots, query)
            self.cost.renders += 1
            self.cost.render_s += time.perf_counter() - began
        return body


def choose_templates(registry: Registry, per_group: int) -> dict[str, str]:
    """Each row's template: the middle row of its size band within its (kind, system, 111) group."""
    # Hubs' books scale with their members' patients, practices' with their own list.
    population = {row.ods_code: row.list_size for row in registry.practices}
    for row in registry.practices:
        for hub in row.booking_hubs:
            population[hub] = population.get(hub, 0) + row.list_size
    groups: dict[tuple[str, str, bool], list[Practice]] = {}
    for row in registry.practices:
        groups.setdefault((row.kind, row.clinical_system, row.accepts_111_booking), []).append(row)
    template_of: dict[str, str] = {}
    for rows in groups.values():
        ranked = sorted(rows, key=lambda r: (population[r.ods_code], r.ods_code))
        bands = min(per_group, len(ranked))
        for band in range(bands):
            members = ranked[band * len(ranked) // bands : (band + 1) * len(ranked) // bands]
            template = members[len(members) // 2].ods_code
            template_of.update((row.ods_code, template) for row in members)
    return template_of


def slot_params(window: SearchWindow, search_filter: SearchFilter) -> list[tuple[str, str]]:
    """The query a consumer sends for one window and filter (as `GpConnectClient` does)."""
    return [
        ("status", "free"),
        ("start", window.start_param),
        ("end", window.end_param),
        ("_include", "Slot:schedule"),
        ("_include:recurse", "Schedule:actor:Practitioner"),
        ("_include:recurse", "Schedule:actor:Location"),
        ("_include:recurse", "Location:managingOrganization"),
        *search_filter.params(),
    ]


def _search_filters(practice: Practice) -> list[SearchFilter]:
    """The differential searches a nightly sync makes (the connector's one rule)."""
    return [search_filter for _, search_filter in search_filters(practice)]


def _aliases(row: Practice, template: Practice) -> dict[str, str]:
    aliases = dict(zip(row.booking_hubs, template.booking_hubs, strict=False))
    if row.nhs111_provider_ods and template.nhs111_provider_ods:
        aliases[row.nhs111_provider_ods] = template.nhs111_provider_ods
    return aliases


def create_app(
    estate: PrerenderedEstate, latency: LatencyModel | None = None, latency_seed: int = DEFAULT_LATENCY_SEED
) -> Starlette:
    """Slot search per practice, empty booking-log exports, and the server's own cost.

    `latency` delays each slot search as a provider would (`sandbox.latency`);
    `GET /_sandbox/in-flight` reports the searches in flight either way.
    """
    suppliers = {ods: row.clinical_system for ods, row in estate.by_ods.items()}

    async def slot_search(request: Request) -> Response:
        try:
            body = estate.slot_search(request.path_params["ods"], request.query_params.multi_items())
        except SandboxError as error:
            body = orjson.dumps(operation_outcome(error.status, error.code, error.diagnostics))
            return Response(body, status_code=error.status, media_type=FHIR_JSON)
        return Response(body, media_type=FHIR_JSON, headers={"Cache-Control": "no-store"})

    async def booking_log(request: Request) -> Response:
        if request.query_params.get("format", "json") == "csv":
            buffer = io.StringIO()
            csv.DictWriter(buffer, fieldnames=_BOOKING_LOG_FIELDS, lineterminator="\n").writeheader()
            return Response(buffer.getvalue(), media_type="text/csv")
        return Response(b"[]", media_type="application/json")

    async def stats(request: Request) -> Response:
        return Response(orjson.dumps(estate.cost.as_json()), media_type="application/json")

    async def not_served(request: Request) -> Response:
        outcome = operation_outcome(501, "NOT_IMPLEMENTED", "this sandbox mode serves slot search only")
        body = orjson.dumps(outcome)
        return Response(body, status_code=501, media_type=FHIR_JSON)

    return Starlette(
        middleware=[
            Middleware(ProviderLatency, latency=latency, supplier_of=suppliers.get, seed=latency_seed)
        ],
        routes=[
            Route("/{ods}/STU3/1/gpconnect/Slot", slot_search, methods=["GET"]),
            Route("/_booking-orgs/{org}/bookings", booking_log, methods=["GET"]),
            Route("/_sandbox/stats", stats, methods=["GET"]),
            Route("/{ods}/STU3/1/gpconnect/{path:path}", not_served, methods=["GET", "POST", "PUT"]),
        ],
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox.prerendered",
        description="Serve the England-scale estate from pre-rendered slot-search bundles.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--start", required=True, help="the fixed simulated instant (ISO 8601, with offset)")
    parser.add_argument("--practices", type=int, default=ENGLAND_PRACTICES,
                        help="practices to serve: whole networks of the England estate, in order")
    parser.add_argument("--horizon-days", type=int, default=DEFAULT_HORIZON_DAYS)
    parser.add_argument("--templates-per-group", type=int, default=DEFAULT_TEMPLATES_PER_GROUP)
    parser.add_argument("--write-registry", type=Path, help="write the served registry's YAML here")
    parser.add_argument("--latency", help="provider latency per slot search, e.g. p50=1s,p95=3s")
    args = parser.parse_args(argv)
    try:
        latency = parse_latency(args.latency) if args.latency else None
    except ValueError as exc:
        parser.error(str(exc))

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((args.host, args.port))
    listener.listen(1024)
    host, port = listener.getsockname()[:2]
    base_url = f"http://{host}:{port}"
    registry = england_estate(base_url, args.seed)
    if args.practices < ENGLAND_PRACTICES:
        registry = sample_estate(registry, args.practices)
    began = time.perf_counter()
    estate = PrerenderedEstate(
        registry, start=parse_fhir_datetime(args.start), seed=args.seed,
        templates_per_group=args.templates_per_group,
    )
    estate.prerender(args.horizon_days)
    if args.write_registry:
        registry.write(args.write_registry)
    print(
        f"pre-rendered {estate.cost.renders} bundles for {estate.cost.templates} templates in "
        f"{time.perf_counter() - began:.1f} s",
        flush=True,
    )
    config = uvicorn.Config(
        create_app(estate, latency, args.seed), log_level="warning", access_log=False, log_config=None,
        lifespan="off", timeout_graceful_shutdown=1,
    )
    print(f"{READY_LINE}{base_url}; Ctrl-C to stop", flush=True)
    uvicorn.Server(config).run(sockets=[listener])  # uvicorn stops cleanly on SIGTERM or Ctrl-C
    print("stopped", flush=True)


if __name__ == "__main__":
    main()
