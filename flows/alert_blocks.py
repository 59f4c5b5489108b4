"""A Prefect notification block that sends e-mail over SMTP (the server's automations use it).

Prefect's core blocks post to Slack and Teams but have no plain SMTP block. The Prefect server
runs an automation's SendNotification in its own process and finds a block's class by its type
slug, so this module is registered as a Prefect collection (the `prefect.collections` entry
point in pyproject.toml): every Prefect process that has slotsync installed imports it.
Keep it light: it is imported whenever Prefect looks up a block class.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from typing import Literal

from prefect.blocks.abstract import NotificationBlock
from pydantic import Field, SecretStr

SMTP_TIMEOUT_S = 30.0


class SmtpEmail(NotificationBlock):  # type: ignore[misc]  # Prefect is untyped for mypy here
    """Send each notification as one plain-text e-mail through an SMTP server."""

    _block_type_name = "slotsync SMTP e-mail"
    _block_type_slug = "slotsync-smtp-email"

    host: str = Field(description="SMTP server host")
    port: int = Field(default=587, description="SMTP port (587 STARTTLS, 465 SSL, 25 plain)")
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    sender: str = Field(description="From address")
    recipients: list[str] = Field(description="To addresses")

    async def notify(self, body: str, subject: str | None = None) -> None:
        # smtplib blocks; the server's event loop must not.
        await asyncio.to_thread(self.send, body, subject)

    def send(self, body: str, subject: str | None = None) -> None:
        message = EmailMessage()
        message["Subject"] = subject or "slotsync alert"
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message.set_content(body)
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if self.security == "ssl":
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=SMTP_TIMEOUT_S, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=SMTP_TIMEOUT_S)
        with smtp:
            if self.security == "starttls":
                smtp.starttls(context=context)
            if self.username and self.password is not None:
                smtp.login(self.username, self.password.get_secret_value())
            smtp.send_message(message)
