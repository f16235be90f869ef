"""Invitation and password-reset mails: plain text, in the person's language, over SMTP."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

from sitegate.cloud.i18n import text
from sitegate.cloud.web.settings import WebSettings


class MailError(RuntimeError):
    """The mail server could not be reached or refused the mail (one line)."""


def link_mail(settings: WebSettings, to: str, name: str, lang: str, purpose: str,
              url: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = settings.mail_from
    msg["To"] = to
    msg["Subject"] = text(lang, f"mail_{purpose}_subject")
    msg.set_content(text(lang, f"mail_{purpose}_body", name=name, url=url))
    return msg


def send(settings: WebSettings, msg: EmailMessage) -> None:
    if settings.smtp is None:
        raise MailError("no mail server configured (--smtp HOST:PORT)")
    host, port = settings.smtp
    try:
        with smtplib.SMTP(host, port, timeout=15) as smtp:
            smtp.send_message(msg)
    except (OSError, smtplib.SMTPException) as exc:
        raise MailError(f"mail to {msg['To']} not sent via {host}:{port}: {exc}") from None
