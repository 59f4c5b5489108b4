"""Secrets at run time: from the environment (settings) or a Prefect Secret block.

A deployment can keep the patient-hash HMAC key in a Prefect Secret block instead of the
worker's environment: set `SLOTSYNC_PATIENT_HASH_KEY_BLOCK` to the block's name. The value is
read when a run needs it and handed on as a `SecretStr`; it is never logged or written.
"""

from __future__ import annotations

from typing import cast

from prefect.blocks.system import Secret
from pydantic import SecretStr

from common.config import Settings


async def patient_hash_key(settings: Settings) -> SecretStr:
    """The HMAC key: the named Secret block's value when configured, else the setting's."""
    name = settings.patient_hash_key_block
    if not name:
        return settings.patient_hash_key
    try:
        block = cast("Secret[str]", await Secret.aload(name))
    except ValueError as exc:  # Prefect: no block document with that name
        raise ValueError(
            f"patient_hash_key_block {name!r}: no such Prefect Secret block ({exc}). Next step: "
            f"create it (Secret(value=...).save({name!r})) or unset SLOTSYNC_PATIENT_HASH_KEY_BLOCK"
        ) from exc
    value = block.get()
    if not isinstance(value, str) or not value:
        raise ValueError(f"patient_hash_key_block {name!r}: the Secret block must hold a non-empty string")
    return SecretStr(value)
