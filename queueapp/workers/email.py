"""The ``send-email`` job type: one message through the configured SMTP server."""

from __future__ import annotations

import ssl
from email.message import EmailMessage
from typing import Any

import aiosmtplib

from ..builtin_settings import SmtpSettings
from .registry import JobContext, JobFailed, UnrecoverableError


def _recipients(data: dict[str, Any]) -> list[str]:
    to = data.get("to")
    items = [to] if isinstance(to, str) else to
    if not isinstance(items, list) or not items or not all(isinstance(a, str) and "@" in a for a in items):
        raise ValueError("data.to must be an email address or a list of them")
    return items


def validate_email_data(data: dict[str, Any]) -> None:
    _recipients(data)
    for key in ("subject", "body", "html", "from"):
        if key in data and not isinstance(data[key], str):
            raise ValueError(f"data.{key} must be a string")


def build_message(data: dict[str, Any], sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = data.get("from", sender)
    message["To"] = ", ".join(_recipients(data))
    message["Subject"] = data.get("subject", "")
    message.set_content(data.get("body", ""))
    if "html" in data:
        message.add_alternative(data["html"], subtype="html")
    return message


async def _send(settings: SmtpSettings, message: EmailMessage) -> dict[str, Any]:
    """One SMTP session with aiosmtplib: asyncio all the way, so a timeout or a cancel
    stops the sending itself (a thread could not be stopped, and a retry would send
    the email a second time)."""
    smtp = aiosmtplib.SMTP(
        hostname=settings.host, port=settings.port, use_tls=settings.security == "tls",
        start_tls=settings.security == "starttls", tls_context=ssl.create_default_context(),
        timeout=settings.timeout_s,
    )
    try:
        await smtp.connect()
        if settings.user:
            await smtp.login(settings.user, settings.password)
        refused, _ = await smtp.send_message(message)
        await smtp.quit()
    except BaseException:
        smtp.close()  # drop the connection at once: a polite QUIT would wait on a stalled server
        raise
    return {"accepted": [a for a in _recipients_of(message) if a not in refused],
            "refused": sorted(refused)}


def _recipients_of(message: EmailMessage) -> list[str]:
    return [a.strip() for a in str(message["To"]).split(",") if a.strip()]


async def send_email_job(settings: SmtpSettings | None, job: JobContext) -> dict[str, Any]:
    if settings is None:
        raise UnrecoverableError("send-email needs an SMTP server: set smtp_host in the configuration")
    message = build_message(job.data, settings.sender)
    try:
        return await _send(settings, message)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        refused = sorted(r.recipient for r in exc.recipients)
        raise UnrecoverableError(f"every recipient was refused: {refused}") from None
    except aiosmtplib.SMTPResponseException as exc:
        text = f"SMTP {exc.code}: {exc.message}"
        if 500 <= exc.code < 600:
            raise UnrecoverableError(text) from None  # permanent: retrying cannot help
        raise JobFailed(text) from None
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise JobFailed(f"SMTP {settings.host}:{settings.port}: {exc}") from None
