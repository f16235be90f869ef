"""Sending a quote or an invoice by e-mail through the site's SMTP server (the standard
library's smtplib: STARTTLS when configured, a login when a user is given; the password
only from a file)."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from pathlib import Path

from sitegate.cloud.jobs.model import Smtp


class MailError(RuntimeError):
    """The message could not be handed to the SMTP server; the message says why."""


def send(smtp: Smtp, to: str, subject: str, text: str,
         attachment: tuple[str, bytes] | None = None) -> str:
    """Hand one message to the server; its Message-ID."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = smtp.sender, to, subject
    msg.set_content(text)
    if attachment is not None:
        name, data = attachment
        msg.add_attachment(data, maintype="application", subtype="pdf", filename=name)
    from email.utils import make_msgid

    msg["Message-ID"] = make_msgid(domain=smtp.sender.rpartition("@")[2] or None)
    try:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout) as s:
            if smtp.starttls:
                s.starttls(context=ssl.create_default_context())
            if smtp.username:
                if not smtp.password_file:
                    raise MailError("smtp.username is set but smtp.password_file is not")
                password = Path(smtp.password_file).read_text(encoding="utf-8").strip()
                s.login(smtp.username, password)
            s.send_message(msg)
    except (OSError, smtplib.SMTPException) as exc:
        raise MailError(f"cannot send mail through {smtp.host}:{smtp.port}: {exc}") from None
    return str(msg["Message-ID"])
