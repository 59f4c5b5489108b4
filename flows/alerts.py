"""Operator alerts as Prefect automations, created in code and idempotently.

`slotsync serve` applies them on start, `slotsync alerts apply` on a server serve did not
start. Each alert is one automation (update-or-create by name) whose actions send the same
text to every configured destination, a notification block saved under a fixed name:

- `slotsync: sync run failed`: a nightly_sync or intraday_sync run ends Failed or Crashed;
  message: the run's report (its state message), the rerun command and a link to the run.
- `slotsync: nightly not completed by deadline`: proactive; a nightly went Late or started and
  no nightly Completed within the window up to `alerts.nightly_deadline`; what to check.
- `slotsync: batch quarantined`: a `slotsync.batch.quarantined` event (flows/validate.py);
  failed expectations and who fixes it.
- `slotsync: NHS 111 configuration drift`: a `slotsync.nhs111.drift` event, once per episode
  (flows/drift.py); since when, evidence, likely cause, who fixes it.

Destinations (common/config.py `AlertSettings`): a Microsoft Teams workflow webhook and a
Slack incoming webhook, both as Prefect's Custom Webhook block (the URL kept in the block's
secrets), and e-mail through `flows.alert_blocks.SmtpEmail`. Secrets come from the environment
or a Prefect Secret block and are stored only in block documents, never logged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from prefect import get_client
from prefect.blocks.core import Block
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.blocks.system import Secret
from prefect.events import emit_event
from prefect.events.actions import SendNotification
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from pydantic import SecretStr

from common.config import AlertSettings
from flows.alert_blocks import SmtpEmail
from flows.alert_messages import deadline_message, failed_run_template

SYNC_FLOWS = ("nightly_sync", "intraday_sync")
NIGHTLY_FLOW = "nightly_sync"
NIGHTLY_START = "02:00"  # flows/deployments.py NIGHTLY_CRON, Europe/London
QUARANTINE_EVENT = "slotsync.batch.quarantined"
DRIFT_EVENT = "slotsync.nhs111.drift"
FAILED_RUN = "slotsync: sync run failed"
NIGHTLY_DEADLINE = "slotsync: nightly not completed by deadline"
QUARANTINED = "slotsync: batch quarantined"
DRIFT = "slotsync: NHS 111 configuration drift"
TEAMS_BLOCK = "slotsync-alerts-teams"
SLACK_BLOCK = "slotsync-alerts-slack"
EMAIL_BLOCK = "slotsync-alerts-email"


class AlertsError(RuntimeError):
    """The alerts could not be applied; the message says why (never a secret)."""


@dataclass(frozen=True)
class AppliedAlerts:
    destinations: list[str]  # block names
    automations: dict[str, str]  # name -> "created" | "updated"


def teams_payload() -> dict[str, Any]:
    """A Teams workflow ("when a webhook request is received") body: one Adaptive Card."""
    return {
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "content": {
                "type": "AdaptiveCard", "version": "1.4",
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "body": [
                    {"type": "TextBlock", "text": "{{subject}}", "weight": "Bolder", "wrap": True},
                    {"type": "TextBlock", "text": "{{body}}", "wrap": True},
                ],
            },
        }],
    }


def slack_payload() -> dict[str, Any]:
    return {"text": "*{{subject}}*\n{{body}}"}


async def _secret(value: SecretStr | None, block: str | None, what: str) -> str | None:
    """A secret from its Prefect Secret block (when named) or the environment's value."""
    if block:
        try:
            loaded: Any = await Secret.aload(block)
        except ValueError:
            raise AlertsError(f"{what}: no Prefect Secret block named {block!r} on this server") from None
        return str(loaded.get())
    return value.get_secret_value() if value is not None else None


async def destination_blocks(settings: AlertSettings) -> dict[str, Block]:
    """The notification block of every configured destination, by the name it is saved under."""
    blocks: dict[str, Block] = {}
    teams = await _secret(settings.teams_webhook_url, settings.teams_webhook_url_block, "Teams webhook")
    if teams:
        blocks[TEAMS_BLOCK] = CustomWebhookNotificationBlock(
            name="slotsync Teams", url="{{webhook_url}}", json_data=teams_payload(),
            secrets={"webhook_url": teams},
        )
    slack = await _secret(settings.slack_webhook_url, settings.slack_webhook_url_block, "Slack webhook")
    if slack:
        blocks[SLACK_BLOCK] = CustomWebhookNotificationBlock(
            name="slotsync Slack", url="{{webhook_url}}", json_data=slack_payload(),
            secrets={"webhook_url": slack},
        )
    if settings.smtp_host:
        if not settings.email_to:
            raise AlertsError("alerts.smtp_host is set but alerts.email_to is empty: "
                              'set SLOTSYNC_ALERTS__EMAIL_TO=\'["oncall@example.nhs.uk"]\'')
        password = await _secret(settings.smtp_password, settings.smtp_password_block, "SMTP password")
        blocks[EMAIL_BLOCK] = SmtpEmail(
            host=settings.smtp_host, port=settings.smtp_port, security=settings.smtp_security,
            username=settings.smtp_username, password=SecretStr(password) if password else None,
            sender=settings.email_from, recipients=list(settings.email_to),
        )
    return blocks


def deadline_window(settings: AlertSettings) -> timedelta:
    """From the nightly's start (02:00 UK) to its deadline; both UK wall-clock times."""
    if settings.nightly_deadline_after_s is not None:
        return timedelta(seconds=settings.nightly_deadline_after_s)
    start = datetime.strptime(NIGHTLY_START, "%H:%M")
    end = datetime.strptime(settings.nightly_deadline, "%H:%M")
    window = end - start
    return window if window > timedelta(0) else window + timedelta(days=1)


def alert_automations(settings: AlertSettings, block_ids: list[UUID], ui_url: str) -> list[AutomationCore]:
    """Every alert, sending to each block; pure (no server), so tests can read what is applied."""

    def send(subject: str, body: str) -> list[SendNotification]:
        return [SendNotification(block_document_id=bid, subject=subject, body=body) for bid in block_ids]

    def relayed(event: str) -> list[SendNotification]:
        # The flow built the text (flows/alert_messages.py); the automation only delivers it.
        return send("{{ event.payload.subject }}", "{{ event.payload.body }}")

    failed_subject, failed_body = failed_run_template(ui_url)
    deadline_subject, deadline_body = deadline_message(deadline=settings.nightly_deadline, ui_url=ui_url)
    sync_flows = {"prefect.resource.role": "flow", "prefect.resource.name": list(SYNC_FLOWS)}
    nightly_flow = {"prefect.resource.role": "flow", "prefect.resource.name": NIGHTLY_FLOW}
    return [
        AutomationCore(
            name=FAILED_RUN, description="A nightly or intraday sync ended Failed or Crashed",
            trigger=EventTrigger(
                expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
                match={"prefect.resource.id": "prefect.flow-run.*"}, match_related=sync_flows,
                posture=Posture.Reactive, threshold=1, within=timedelta(0),
            ),
            actions=send(failed_subject, failed_body),
        ),
        AutomationCore(
            name=NIGHTLY_DEADLINE,
            description=f"No nightly_sync Completed by {settings.nightly_deadline} Europe/London",
            trigger=EventTrigger(
                # A nightly that is due but not picked up goes Late; one that starts runs. Either
                # opens the window, and any nightly (or a re-run of it) completing closes it.
                after={"prefect.flow-run.Late", "prefect.flow-run.Running"},
                expect={"prefect.flow-run.Completed"},
                match={"prefect.resource.id": "prefect.flow-run.*"}, match_related=nightly_flow,
                posture=Posture.Proactive, threshold=1, within=deadline_window(settings),
            ),
            actions=send(deadline_subject, deadline_body),
        ),
        AutomationCore(
            name=QUARANTINED, description="A practice's batch failed data-quality expectations",
            trigger=EventTrigger(expect={QUARANTINE_EVENT}, posture=Posture.Reactive, threshold=1,
                                 within=timedelta(0)),
            actions=relayed(QUARANTINE_EVENT),
        ),
        AutomationCore(
            name=DRIFT, description="A practice's NHS 111 booking configuration drifted (one per episode)",
            trigger=EventTrigger(expect={DRIFT_EVENT}, posture=Posture.Reactive, threshold=1,
                                 within=timedelta(0)),
            actions=relayed(DRIFT_EVENT),
        ),
    ]


async def apply_alerts(
    settings: AlertSettings, *, api_url: str, progress: Callable[[str], None] = print
) -> AppliedAlerts:
    """Save the destination blocks and create or update every alert automation by name.

    With no destination configured nothing is created and the existing alerts are left alone.
    """
    blocks = await destination_blocks(settings)
    if not blocks:
        progress("alerts: no destination configured (SLOTSYNC_ALERTS__TEAMS_WEBHOOK_URL, "
                 "..._SLACK_WEBHOOK_URL or ..._SMTP_HOST); nothing applied")
        return AppliedAlerts([], {})
    block_ids = [await block.asave(name, overwrite=True) for name, block in blocks.items()]
    ui_url = settings.ui_url or api_url.removesuffix("/").removesuffix("/api")
    applied: dict[str, str] = {}
    async with get_client() as client:
        for automation in alert_automations(settings, block_ids, ui_url):
            existing = await client.read_automations_by_name(automation.name)
            if existing:
                await client.update_automation(existing[0].id, automation)
                for duplicate in existing[1:]:  # left by an older, non-idempotent apply
                    await client.delete_automation(duplicate.id)
                applied[automation.name] = "updated"
            else:
                await client.create_automation(automation)
                applied[automation.name] = "created"
            progress(f"alert {automation.name!r} {applied[automation.name]} -> {', '.join(blocks)}")
    return AppliedAlerts(list(blocks), applied)


def emit_alert(event: str, resource_id: str, subject: str, body: str, **labels: str) -> None:
    """Send an alert event whose payload is the finished message (the automation relays it)."""
    emit_event(event, resource={"prefect.resource.id": resource_id, **labels},
               payload={"subject": subject, "body": body})
