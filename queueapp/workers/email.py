"""The ``send-email`` job type: one message through the configured SMTP server."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from .registry import JobContext, JobFailed, UnrecoverableError


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 587
    security: str = "starttls"  # none, starttls or tls
    user: str = ""
    password: str = ""
    sender: str = "queueapp@localhost"
    timeout_s: float = 30.0


def _recipients(data: dict[str, Any]) -> list[str]:
    to = data.get("to")
    items = [to] if isinstance(to, str) else to
    if not isinstance(items, list) or not items or not all(isinstance(a, str) and "@" in a for a in items):
        raise ValueError("data.to must be an email address or a list of them")
    return items


def validate_email_data(data: dict[str, Any]) -> None:
    _recipients(data)
    for field in ("subject", "body", "html", "from"):
        if field in data and not isinstance(data[field], str):
            raise ValueError(f"data.{field} must be a string")


def build_message(data: dict[str, Any], sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = data.get("from", sender)
    message["To"] = ", ".join(_recipients(data))
    message["Subject"] = data.get("subject", "")
    message.set_content(data.get("body", ""))
    if "html" in data:
        message.add_alternative(data["html"], subtype="html")
    return message


def _send(settings: SmtpSettings, message: EmailMessage) -> dict[str, Any]:
    context = ssl.create_default_context()
    smtp_class = smtplib.SMTP_SSL if settings.security == "tls" else smtplib.SMTP
    kwargs: dict[str, Any] = {"context": context} if settings.security == "tls" else {}
    with smtp_class(settings.host, settings.port, timeout=settings.timeout_s, **kwargs) as smtp:
        if settings.security == "starttls":
            smtp.starttls(context=context)
        if settings.user:
            smtp.login(settings.user, settings.password)
        refused = smtp.send_message(message)
    return {"accepted": [a for a in message["To"].split(", ") if a not in refused],
            "refused": sorted(refused)}


async def send_email_job(settings: SmtpSettings | None, job: JobContext) -> dict[str, Any]:
    if settings is None:
        raise UnrecoverableError("send-email needs an SMTP server: set smtp_host in the configuration")
    message = build_message(job.data, settings.sender)
    try:
        # smtplib blocks: run it in a thread so the appliance keeps serving
        return await asyncio.to_thread(_send, settings, message)
    except smtplib.SMTPResponseException as exc:
        reason = exc.smtp_error
        text = f"SMTP {exc.smtp_code}: {reason.decode(errors='replace') if isinstance(reason, bytes) else reason}"
        if 500 <= exc.smtp_code < 600:
            raise UnrecoverableError(text) from None  # permanent: retrying cannot help
        raise JobFailed(text) from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise UnrecoverableError(f"every recipient was refused: {sorted(exc.recipients)}") from None
