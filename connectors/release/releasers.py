"""Choosing the releaser: `releaser_for` (one practice) and `Releasers` (a whole run, one
HTTP pool) pick the implementation from `practice.release_policy.releaser`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import httpx

from common.clock import Clock
from common.config import Settings
from connectors.registry import Practice
from connectors.release.model import SlotReleaser
from connectors.release.supplier_api import SupplierApiReleaser
from connectors.release.worklist import WorkListReleaser


def releaser_for(
    practice: Practice,
    settings: Settings,
    out_dir: Path,
    *,
    clock: Clock | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> SlotReleaser:
    """A new releaser for one practice, chosen by `practice.release_policy.releaser`.

    For a whole run use `Releasers`, which shares one releaser (and HTTP pool) per kind.
    """
    kind = practice.release_policy.releaser
    if kind == "sandbox":
        return SupplierApiReleaser(settings.http, clock=clock, transport=transport)
    if kind == "worklist":
        return WorkListReleaser(out_dir, clock=clock)
    raise ValueError(f"practice {practice.ods_code}: unknown releaser {kind!r}")


@dataclass
class Releasers:
    """The releasers of one run: at most one per kind, so all supplier calls share a pool."""

    settings: Settings
    out_dir: Path
    clock: Clock | None = None
    transport: httpx.AsyncBaseTransport | None = None
    _by_kind: dict[str, SlotReleaser] = field(default_factory=dict, init=False, repr=False)

    def for_practice(self, practice: Practice) -> SlotReleaser:
        kind = practice.release_policy.releaser
        if kind not in self._by_kind:
            self._by_kind[kind] = releaser_for(
                practice, self.settings, self.out_dir, clock=self.clock, transport=self.transport
            )
        return self._by_kind[kind]

    async def aclose(self) -> None:
        releasers, self._by_kind = list(self._by_kind.values()), {}
        for releaser in releasers:
            await releaser.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
