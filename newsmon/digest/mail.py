"""The digest as a MIME message, and sending it over SMTP.

Structure: multipart/alternative holding text/plain first (the fallback) and then
multipart/related holding text/html and the charts as image/png parts with Content-IDs.
prefect-email's multipart/mixed shows the charts as attachments in some clients, hence this.

The SMTP password comes from the environment variable or the Prefect Secret block named in
[email]; it is passed straight to smtplib and never logged or put into an error message.
"""

from __future__ import annotations

import os
import smtplib
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from newsmon.config import EmailSettings
from newsmon.digest.charts import Chart
from newsmon.digest.render import RenderedDigest

# Seconds for one socket operation with the SMTP server: a stalled server fails the attempt
# (and the flow's retry policy decides) instead of hanging the weekly run.
SMTP_TIMEOUT_SECONDS = 30.0


class SendError(Exception):
    """Mail could not be delivered to the server. `transient`: worth trying again later."""

    def __init__(self, message: str, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


def build_message(
    settings: EmailSettings, rendered: RenderedDigest, charts: Mapping[str, Chart]
) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = rendered.subject
    message["From"] = settings.sender
    if settings.to:
        message["To"] = ", ".join(settings.to)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=settings.sender.rpartition("@")[2] or None)
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    html_part = message.get_payload()[1]
    for chart in charts.values():
        html_part.add_related(
            chart.png,
            maintype="image",
            subtype="png",
            cid=f"<{chart.cid}>",
            filename=f"{chart.name}.png",
            disposition="inline",
        )
    return message


def smtp_password(settings: EmailSettings) -> str | None:
    """The password from $<password_env>, else from the Prefect Secret block, else None."""
    from_env = os.environ.get(settings.password_env)
    if from_env:
        return from_env
    if settings.password_block:
        from prefect.blocks.system import Secret

        try:
            return Secret.load(settings.password_block).get()
        except ValueError as exc:  # Prefect raises ValueError for a block that does not exist
            raise SendError(
                f"cannot read the SMTP password from Prefect Secret block "
                f"{settings.password_block!r}: {exc}",
                transient=False,
            ) from None
    return None


def _transient(error: Exception) -> bool:
    """Whether trying again later may help: network trouble and 4xx replies, not 5xx or TLS."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return all(400 <= code < 500 for code, _ in error.recipients.values())
    if isinstance(error, smtplib.SMTPResponseException):
        return 400 <= error.smtp_code < 500
    if isinstance(error, (ssl.SSLError, smtplib.SMTPNotSupportedError)):
        return False
    return isinstance(error, (OSError, smtplib.SMTPServerDisconnected))


def send_message(settings: EmailSettings, message: EmailMessage, password: str | None) -> None:
    """Deliver `message` to every address in settings.to; SendError says why it could not."""
    where = f"{settings.host}:{settings.port} ({settings.security})"
    if settings.username and not password:
        raise SendError(
            f"SMTP user {settings.username!r} is set but no password was found: set "
            f"${settings.password_env}"
            + (
                f" or the Prefect Secret block {settings.password_block!r}"
                if settings.password_block
                else " (or [email] password_block)"
            ),
            transient=False,
        )
    context = ssl.create_default_context()
    try:
        if settings.security == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                settings.host, settings.port, timeout=SMTP_TIMEOUT_SECONDS, context=context
            )
        else:
            client = smtplib.SMTP(settings.host, settings.port, timeout=SMTP_TIMEOUT_SECONDS)
        with client:
            if settings.security == "starttls":
                client.starttls(context=context)
            if settings.username and password:
                client.login(settings.username, password)
            refused = client.send_message(message, settings.sender, list(settings.to))
    except (smtplib.SMTPException, OSError) as exc:
        detail = str(exc) or type(exc).__name__
        raise SendError(
            f"could not send mail via {where}: {type(exc).__name__}: {detail}",
            transient=_transient(exc),
        ) from exc
    if refused:
        # Some recipients took it, so sending again would give them a second copy.
        rejected = ", ".join(
            f"{a} ({code} {reply.decode(errors='replace')})" for a, (code, reply) in refused.items()
        )
        raise SendError(
            f"the server at {where} refused some recipients: {rejected}", transient=False
        )
