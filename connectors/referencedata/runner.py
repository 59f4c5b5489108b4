"""`slotsync registry build` end to end: sources from options, build, and the files it writes.

Writes the registry, a findings report (`<output>.build.json`: scope, counts, per-practice
findings, stale sources) and, when a previous registry exists (by default the output file
itself, from last month), a diff report (`<output>.diff.json` and `.diff.md`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from connectors.referencedata import DEFAULT_CACHE_DIR, DEFAULT_ORD_URL, DEFAULT_SDS_URL
from connectors.referencedata.build import (
    BuildError,
    BuildResult,
    Scope,
    Sources,
    build_registry,
    diff_markdown,
    diff_registries,
)
from connectors.referencedata.cache import (
    Fetched,
    ReferenceCache,
    RemoteFailure,
    SourceUnavailable,
    http_get,
)
from connectors.referencedata.ods import OrdClient, OrdError
from connectors.referencedata.sds import SdsClient, SdsError
from connectors.referencedata.sources import (
    DEFAULT_PROVIDER_MAPPING,
    ProviderMapping,
    SourceError,
    load_hub_file,
    parse_list_sizes,
    parse_nhs111_workbook,
)
from connectors.registry import Registry, RegistryError, load_registry

OFF = "off"
SDS_API_KEY_ENV = "SLOTSYNC_SDS_API_KEY"


@dataclass(frozen=True)
class BuildOptions:
    scope: Scope
    output: Path
    ord_url: str | None
    sds_url: str | None
    sds_api_key: str | None = None
    list_sizes: str | None = None
    nhs111_csv: str | None = None
    hubs: Path | None = None
    provider_mapping: Path = DEFAULT_PROVIDER_MAPPING
    previous: Path | None = None
    cache_dir: Path | None = None
    offline: bool = False
    max_age_days: int = 35
    sleep: Callable[[float], None] = time.sleep


@dataclass(frozen=True)
class BuildOutcome:
    result: BuildResult
    report_path: Path
    diff_path: Path | None
    diff: dict[str, Any] | None


class BuildFailed(Exception):
    """One line for the operator."""


def build_options(
    *,
    output: Path,
    icb: str | None = None,
    sub_icb: str | None = None,
    practices: tuple[str, ...] = (),
    ord_url: str = DEFAULT_ORD_URL,
    sds_url: str = DEFAULT_SDS_URL,
    list_sizes: str | None = None,
    nhs111_csv: str | None = None,
    hubs: Path | None = None,
    provider_mapping: Path | None = None,
    previous: Path | None = None,
    cache_dir: Path = DEFAULT_CACHE_DIR,
    offline: bool = False,
) -> BuildOptions:
    """Options as `slotsync registry build` and the registry-refresh flow take them: exactly one
    scope, 'off' for an API not used, the SDS API key from the environment."""
    if len([value for value in (icb, sub_icb, practices) if value]) != 1:
        raise BuildFailed("give exactly one of --icb, --sub-icb, --practices")
    scope = Scope(icb=icb.upper() if icb else None, sub_icb=sub_icb.upper() if sub_icb else None,
                  practices=tuple(practices))
    return BuildOptions(
        scope=scope, output=output, ord_url=None if ord_url == OFF else ord_url,
        sds_url=None if sds_url == OFF else sds_url, sds_api_key=os.environ.get(SDS_API_KEY_ENV),
        list_sizes=list_sizes, nhs111_csv=nhs111_csv, hubs=hubs,
        provider_mapping=provider_mapping or DEFAULT_PROVIDER_MAPPING, previous=previous,
        cache_dir=cache_dir, offline=offline,
    )


def run_build(options: BuildOptions) -> BuildOutcome:
    cache = ReferenceCache(
        options.cache_dir, offline=options.offline, max_age=timedelta(days=options.max_age_days)
    )
    http = httpx.Client(timeout=30.0)
    try:
        previous = _previous(options)
        providers = ProviderMapping.load(options.provider_mapping)
        sources = Sources(
            ord=OrdClient(options.ord_url, cache=cache, http=http, sleep=options.sleep)
            if options.ord_url
            else None,
            sds=SdsClient(
                options.sds_url, cache=cache, api_key=options.sds_api_key, http=http, sleep=options.sleep
            )
            if options.sds_url
            else None,
            previous=previous,
            cache=cache,
        )
        if options.list_sizes:
            text = _text(options.list_sizes, "list-sizes", cache, http, options.sleep)
            sources.list_sizes = parse_list_sizes(text, options.list_sizes)
        if options.nhs111_csv:
            text = _text(options.nhs111_csv, "nhs111-workbook", cache, http, options.sleep)
            sources.nhs111 = parse_nhs111_workbook(text, options.nhs111_csv, providers)
        if options.hubs:
            sources.hubs = load_hub_file(options.hubs)
        result = build_registry(options.scope, sources)
    except (SourceError, SourceUnavailable, BuildError, OrdError, SdsError) as exc:
        raise BuildFailed(str(exc).splitlines()[0]) from None
    finally:
        http.close()
    if sources.list_sizes is not None:  # unreadable rows in the extract: notes, not practice findings
        result.notes.extend(sources.list_sizes.problems)
    result.registry.write(options.output)
    report = result.report()
    report["built_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    report["registry"] = str(options.output)
    if sources.list_sizes is not None:
        report["list_size_extract_date"] = sources.list_sizes.extract_date
    diff = diff_path = None
    if previous is not None:
        diff = diff_registries(previous, result.registry, result.closed)
        diff_path = options.output.with_suffix(".diff.json")
        diff_path.write_text(json.dumps(diff, indent=2) + "\n", encoding="utf-8")
        diff_path.with_suffix(".md").write_text(diff_markdown(diff), encoding="utf-8")
        report["diff"] = str(diff_path)
    report_path = options.output.with_suffix(".build.json")
    report_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return BuildOutcome(result, report_path, diff_path, diff)


def _previous(options: BuildOptions) -> Registry | None:
    path = options.previous or (options.output if options.output.exists() else None)
    if path is None:
        return None
    try:
        return load_registry(path)
    except RegistryError as exc:
        raise BuildFailed(f"previous registry {path} is not valid: {exc.problems[0]}") from None


def _text(
    location: str, source: str, cache: ReferenceCache, http: httpx.Client, sleep: Callable[[float], None]
) -> str:
    """A CSV source from a local path or an http(s) URL (cached like ORD and SDS answers)."""
    if not location.startswith(("http://", "https://")):
        try:
            return Path(location).read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise SourceError(f"{source} {location}: cannot read it: {exc}") from None

    def request() -> tuple[int, dict[str, str], bytes]:
        try:
            response = http.get(location)
        except httpx.TransportError as exc:
            raise RemoteFailure(f"{location}: {exc}") from exc
        return response.status_code, {k.lower(): v for k, v in response.headers.items()}, response.content

    answer: Fetched = cache.get(source, location, lambda: http_get(request, what=location, sleep=sleep))
    if answer.status != 200:
        raise SourceError(f"{source} {location}: HTTP {answer.status}")
    return answer.body.decode("utf-8-sig")
