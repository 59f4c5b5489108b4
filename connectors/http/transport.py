"""The client factory, the size-capped send, and the error built from a failed response."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit
from urllib.request import getproxies

import httpx

from common.config import HttpSettings
from connectors.http.errors import (
    HttpError,
    PracticeBudgetExceeded,
    RequestDeadlineExceeded,
    ResponseInvalid,
    TransportFailure,
    classify_status,
)
from connectors.http.pool import ShardedTransport, shard_count


@dataclass(frozen=True)
class Caller:
    """Whom a call is for, as its errors name it: an ODS code, the interaction, a label."""

    ods_code: str
    interaction: str
    subject: str | None = None  # e.g. "booking organisation X"; default "practice <ODS>"


def new_client(
    http: HttpSettings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    headers: Mapping[str, str] | None = None,
    spine_tls: bool = False,
) -> httpx.AsyncClient:
    """One pooled client from settings (timeouts, pool size; past 16 connections, several pools).

    `spine_tls` adds the Spine client certificate and CA bundle, for GP Connect only: the
    other endpoints are not reached through the Spine.
    """
    cert: tuple[str, str] | None = None
    verify: bool | str = True
    if spine_tls:
        if http.client_cert_path and http.client_key_path:
            cert = (str(http.client_cert_path), str(http.client_key_path))
        if http.ca_bundle_path:
            verify = str(http.ca_bundle_path)
    if transport is None and shard_count(http.overall_concurrency) > 1 and not getproxies():
        # Past 16 connections httpcore's pool costs the event loop dearly (connectors/http/pool.py).
        # Not with a proxy from the environment: httpx honours HTTPS_PROXY/NO_PROXY only for
        # its own transport, so a proxied deployment keeps it.
        transport = ShardedTransport(max_connections=http.overall_concurrency, verify=verify, cert=cert)
    return httpx.AsyncClient(
        timeout=httpx.Timeout(http.timeout_s, connect=http.connect_timeout_s),
        limits=httpx.Limits(
            max_connections=http.overall_concurrency,
            max_keepalive_connections=http.overall_concurrency,
        ),
        headers=dict(headers or {}),
        transport=transport,
        # A redirect could carry our bearer JWT to another host: never followed (a 3xx is
        # classified as `Redirected` by the error table instead).
        follow_redirects=False,
        cert=cert,
        verify=verify,
    )


async def send_capped(
    client: httpx.AsyncClient,
    http: HttpSettings,
    caller: Caller,
    method: str,
    url: str,
    *,
    deadline: float | None = None,
    **request: Any,
) -> httpx.Response:
    """Send one request and read its body, refusing more than `http.max_response_bytes`.

    The whole exchange (connect, headers, every body byte) must finish within
    `http.request_deadline_s`, and before `deadline` (a `time.monotonic()` instant: the end of
    the caller's budget) when one is given. A transport failure (also one mid-body) becomes
    `TransportFailure`, a missed request deadline `RequestDeadlineExceeded`, a spent budget
    `PracticeBudgetExceeded`, an oversized body `ResponseInvalid`. The returned response has
    its `content` read. Status is not checked.
    """
    limit, budget_bound = http.request_deadline_s, False
    if deadline is not None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _budget_exceeded(http, caller)
        if remaining < limit:
            limit, budget_bound = remaining, True
    try:
        # `timeout_s` restarts with every byte read; this bound does not.
        async with asyncio.timeout(limit):
            response, content = await _send_and_read(client, http, caller, method, url, request)
    except TimeoutError as exc:
        if budget_bound:
            raise _budget_exceeded(http, caller) from exc
        raise RequestDeadlineExceeded(
            f"no complete response within {http.request_deadline_s:g} s (http.request_deadline_s)",
            practice_ods=caller.ods_code,
            interaction=caller.interaction,
            subject=caller.subject,
        ) from exc
    # httpx has no public way to attach a body read under our own cap.
    response._content = content
    return response


def _budget_exceeded(http: HttpSettings, caller: Caller) -> PracticeBudgetExceeded:
    return PracticeBudgetExceeded.after(
        http.practice_budget_s, practice_ods=caller.ods_code, interaction=caller.interaction,
        subject=caller.subject,
    )


async def _send_and_read(
    client: httpx.AsyncClient,
    http: HttpSettings,
    caller: Caller,
    method: str,
    url: str,
    request: dict[str, Any],
) -> tuple[httpx.Response, bytes]:
    try:
        response = await client.send(client.build_request(method, url, **request), stream=True)
        try:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > http.max_response_bytes:
                    raise ResponseInvalid(
                        f"response larger than the {http.max_response_bytes}-byte cap "
                        "(http.max_response_bytes)",
                        practice_ods=caller.ods_code,
                        interaction=caller.interaction,
                        subject=caller.subject,
                        status=response.status_code,
                        next_step="raise the cap if the payload is genuine, or report the "
                        "provider; the practice is skipped this run",
                    )
                chunks.append(chunk)
        finally:
            await response.aclose()
    except httpx.TransportError as exc:
        raise TransportFailure(
            f"{type(exc).__name__}: {exc or 'no detail'}",
            practice_ods=caller.ods_code,
            interaction=caller.interaction,
            subject=caller.subject,
        ) from exc
    return response, b"".join(chunks)


def require_status(
    response: httpx.Response, caller: Caller, success: int | frozenset[int] = 200
) -> None:
    """Raise the table's error unless the status is the interaction's success (200 by default).

    "Below 400" is not success: a 3xx or a 204 with a plausible body must never be loaded.
    """
    allowed = success if isinstance(success, frozenset) else frozenset({success})
    if response.status_code not in allowed:
        raise error_for(response, caller)


def error_for(
    response: httpx.Response,
    caller: Caller,
    error_class: type[HttpError] | None = None,
    *,
    code: str | None = None,
    detail: str | None = None,
    next_step: str | None = None,
) -> HttpError:
    """The error for a failed response: classified by status unless the client chose a class."""
    cls = error_class or classify_status(response.status_code)
    if detail is None and 300 <= response.status_code < 400:
        detail = _redirect_detail(response)
    return cls(
        detail or response.reason_phrase or "error response",
        practice_ods=caller.ods_code,
        interaction=caller.interaction,
        subject=caller.subject,
        status=response.status_code,
        code=code,
        next_step=next_step,
        retry_after_s=retry_after_seconds(response.headers.get("Retry-After")),
    )


def _redirect_detail(response: httpx.Response) -> str:
    """Where a redirect pointed, by host only (a Location's query could carry anything)."""
    location = response.headers.get("location")
    if not location:
        return "redirect without a Location; not followed"
    target = urlsplit(location)
    where = target.hostname or "the same host"
    same = target.hostname in (None, response.request.url.host)
    return f"redirect to {where}{'' if same else ' (another host)'}; not followed, body not loaded"


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """`Retry-After` as seconds from now: delta-seconds or an HTTP-date (RFC 9110 10.2.3)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": UTC with no source zone
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
