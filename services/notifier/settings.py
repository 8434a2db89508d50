"""Settings of the notifier service."""

from __future__ import annotations

import dataclasses

from services.common.config import (
    AsksPermissionsSettings,
    CommonSettings,
    parse_positive_int,
    service_database_default,
    setting,
)

SMTP_SECURITY_MODES = ("none", "starttls", "ssl")


def parse_smtp_security(raw: str) -> str:
    value = raw.strip().lower()
    if value not in SMTP_SECURITY_MODES:
        raise ValueError(f"expected one of {', '.join(SMTP_SECURITY_MODES)}")
    return value


def parse_positive_float(raw: str) -> float:
    value = float(raw)
    if value <= 0:
        raise ValueError("expected a positive number")
    return value


@dataclasses.dataclass(frozen=True, kw_only=True)
class NotifierSettings(CommonSettings, AsksPermissionsSettings):
    database_url: str = setting("DATABASE_URL", service_database_default("notifier"),
                                help="SQLAlchemy URL of the notifier database")
    smtp_host: str = setting("SMTP_HOST", "127.0.0.1", help="SMTP server the notifier sends through")
    senders: int = setting("NOTIFY_SENDERS", 4, parse_positive_int,
                           help="SMTP sender threads per notifier worker (each keeps one connection open)")
    smtp_port: int = setting("SMTP_PORT", 8025, parse_positive_int,
                             help="port of the SMTP server (8025: the dev sink of make run)")
    smtp_security: str = setting("SMTP_SECURITY", "none", parse_smtp_security,
                                 help="none, starttls (upgrade a plain connection) or ssl (implicit TLS)")
    smtp_username: str = setting("SMTP_USERNAME", "", help="SMTP AUTH user (empty: no authentication)")
    smtp_password: str = setting("SMTP_PASSWORD", "", help="SMTP AUTH password (used with SMTP_USERNAME)")
    smtp_timeout: float = setting("SMTP_TIMEOUT_SECONDS", 10.0, parse_positive_float,
                                  help="socket timeout of every SMTP connection and command")
    mail_from: str = setting("MAIL_FROM", "Portico <no-reply@portico.local>",
                             help="From: address of every email")
    max_attempts: int = setting("NOTIFY_MAX_ATTEMPTS", 6, parse_positive_int,
                                help="SMTP attempts of a message before it is dead-lettered (temporary failures)")
    backoff_base: float = setting("NOTIFY_BACKOFF_BASE_SECONDS", 30.0, parse_positive_float,
                                  help="first retry delay; doubled on each further attempt, with jitter")
    backoff_max: float = setting("NOTIFY_BACKOFF_MAX_SECONDS", 3600.0, parse_positive_float,
                                 help="longest delay between two attempts of one message")
    sending_timeout: float = setting(
        "NOTIFY_SENDING_TIMEOUT_SECONDS", 300.0, parse_positive_float,
        help="a message left 'sending' this long (its sender died) is retried with the same Message-ID")
    batch_size: int = setting("NOTIFY_BATCH_SIZE", 20, parse_positive_int,
                              help="messages a sender claims per round")
    poll_interval: float = setting("NOTIFY_POLL_SECONDS", 0.5, parse_positive_float,
                                   help="how often an idle sender looks for due messages")
    delivered_check_dir: str = setting(
        "NOTIFY_DELIVERED_CHECK_DIR", "",
        help="a mail directory (the dev sink's var/mail) searched for a Message-ID before a "
             "retry, so a message accepted just before a crash is not sent twice (empty: off)")
    public_base_url: str = setting("PUBLIC_BASE_URL", "http://127.0.0.1:8001",
                                   help="base URL of the portal shown in emails (sign-in, tracking)")
    helpdesk_phone: str = setting("HELPDESK_PHONE", "+1 202 555 0100",
                                  help="help-desk phone number printed in inactivity and deactivation emails")
    helpdesk_hours_en: str = setting("HELPDESK_HOURS", "Monday to Friday, 9:00 to 18:00",
                                     help="help-desk hours (English) printed next to the phone number")
    helpdesk_hours_es: str = setting("HELPDESK_HOURS_ES", "de lunes a viernes, de 9:00 a 18:00 horas",
                                     help="help-desk hours (Spanish) printed next to the phone number")
    # The program's brand (issue 29), as on identity's pages.
    brand_name: str = setting("BRAND_NAME", "Portico",
                              help="the program's name in the emails' header and footer")
    brand_logo: str = setting(
        "BRAND_LOGO", "",
        help="an http(s) URL is the emails' logo as it is; otherwise (a file on identity's "
             "disk, or empty: Portico's) the emails show PUBLIC_BASE_URL/brand/logo, "
             "where identity serves it")

    @property
    def brand_logo_url(self) -> str:
        if self.brand_logo.startswith(("https://", "http://")):
            return self.brand_logo
        return self.public_base_url.rstrip("/") + "/brand/logo"
