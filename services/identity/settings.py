"""Settings of the identity service."""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping
from urllib.parse import urlsplit

from services.common.config import (
    CommonSettings,
    parse_bool,
    parse_list,
    parse_positive_int,
    service_database_default,
    setting,
)

from .branding import parse_color, parse_logo

# Dev-only defaults: the service logs a warning at start-up while either is in use.
DEV_KEY_ENCRYPTION_KEY = "cG9ydGljby1kZXYta2V5LWVuY3J5cHRpb24ta2V5LTE="
DEV_CLIENT_SECRET_PEPPER = "portico-dev-client-secret-pepper"  # noqa: S105 (dev default, warned)


def _secure_cookie_default(env: Mapping[str, str]) -> bool:
    """true when OIDC_ISSUER is https"""
    return env.get("OIDC_ISSUER", "http://127.0.0.1:8001").startswith("https://")


_secure_cookie_default.__doc__ = "true when OIDC_ISSUER is https"


def _public_origin(env: Mapping[str, str]) -> tuple[str, str, str]:
    """(scheme, host, netloc) of PUBLIC_BASE_URL, else OIDC_ISSUER: where the pages are."""
    parts = urlsplit(env.get("PUBLIC_BASE_URL") or env.get("OIDC_ISSUER", "http://127.0.0.1:8001"))
    return parts.scheme, parts.hostname or "localhost", parts.netloc


def _is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _webauthn_rp_id_default(env: Mapping[str, str]) -> str:
    """the host of PUBLIC_BASE_URL (else OIDC_ISSUER); localhost when that is an IP address"""
    # WebAuthn refuses an IP address as the RP id: a local suite served on 127.0.0.1 (make
    # run) does its passkeys on localhost, the same machine.
    host = _public_origin(env)[1]
    return "localhost" if _is_ip_address(host) else host


def _webauthn_origins_default(env: Mapping[str, str]) -> list[str]:
    """the origin of PUBLIC_BASE_URL (else OIDC_ISSUER), and its localhost twin on a loopback IP"""
    scheme, host, netloc = _public_origin(env)
    origins = [f"{scheme}://{netloc}"]
    if _is_ip_address(host) and ipaddress.ip_address(host).is_loopback:
        port = urlsplit(f"{scheme}://{netloc}").port
        origins.append(f"{scheme}://localhost" + (f":{port}" if port else ""))
    return origins


def _webauthn_rp_name_default(env: Mapping[str, str]) -> str:
    """BRAND_NAME"""
    return env.get("BRAND_NAME") or "Portico"


@dataclasses.dataclass(frozen=True, kw_only=True)
class IdentitySettings(CommonSettings):
    database_url: str = setting("DATABASE_URL", service_database_default("identity"),
                                help="SQLAlchemy URL of the identity database")
    key_encryption_key: str = setting(
        "KEY_ENCRYPTION_KEY", DEV_KEY_ENCRYPTION_KEY,
        help="Fernet key encrypting the private parts of the signing keys at rest "
             "(a dev key by default: set it in production)", secret=True)
    client_secret_pepper: str = setting(
        "CLIENT_SECRET_PEPPER", DEV_CLIENT_SECRET_PEPPER,
        help="HMAC key of the stored client-secret digests (a dev value by default: set it in "
             "production; changing it invalidates every client secret)", secret=True)
    session_cookie_secure: bool = setting(
        "SESSION_COOKIE_SECURE", _secure_cookie_default, parse_bool,
        help="mark the login-session cookie Secure (turn off only for plain-http development)")
    session_ttl: int = setting("SESSION_TTL", 8 * 3600, parse_positive_int,
                               help="seconds a login session lives without a new login")
    access_token_ttl: int = setting("ACCESS_TOKEN_TTL", 600, parse_positive_int,
                                    help="default access-token lifetime in seconds (per-client override)")
    id_token_ttl: int = setting("ID_TOKEN_TTL", 600, parse_positive_int,
                                help="default ID-token lifetime in seconds (per-client override)")
    refresh_token_ttl: int = setting("REFRESH_TOKEN_TTL", 30 * 86400, parse_positive_int,
                                     help="default refresh-token lifetime in seconds (per-client override)")
    auth_code_ttl: int = setting("AUTH_CODE_TTL", 60, parse_positive_int,
                                 help="authorization-code lifetime in seconds")
    key_activation_delay: int = setting(
        "KEY_ACTIVATION_DELAY", 300, int,
        help="seconds a rotated-in signing key is published before it signs (>= relying "
             "parties' JWKS cache time)")
    max_token_lifetime: int = setting(
        "MAX_TOKEN_LIFETIME", 3600, parse_positive_int,
        help="longest access/ID-token lifetime any client may have; a superseded key stays "
             "published this long")
    permissions_url: str = setting("PERMISSIONS_URL", "http://127.0.0.1:8002",
                                   help="base URL of the permissions service (entitlements claim)")
    permissions_scope: str = setting(
        "PERMISSIONS_SCOPE", "permissions.read",
        help="scope of the service token identity uses to read a user's entitlements")
    entitlements_timeout: float = setting(
        "ENTITLEMENTS_TIMEOUT", 2.0, float,
        help="seconds to wait for the permissions service when building the entitlements claim")
    admin_audience: str = setting("IDENTITY_AUDIENCE", "identity",
                                  help="audience the admin API's bearer tokens must carry")
    login_rate_limit: str = setting(
        "LOGIN_RATE_LIMIT", "30 per minute;300 per hour",
        help="failed sign-ins (wrong credentials) allowed per client IP (limits syntax); "
             "the per-account lockout stops guessing one account's password")
    login_success_rate_limit: str = setting(
        "LOGIN_SUCCESS_RATE_LIMIT", "1000 per 10 minutes",
        help="successful sign-ins allowed per client IP (a whole office behind one NAT)")
    token_rate_limit_ip: str = setting(
        "TOKEN_RATE_LIMIT_IP", "600 per minute",
        help="token-endpoint requests allowed per client IP, failed client authentications "
             "included")
    token_rate_limit_client: str = setting(
        "TOKEN_RATE_LIMIT_CLIENT", "300 per minute",
        help="token-endpoint requests allowed per confidential client, counted once it "
             "authenticated")
    rate_limits_enabled: bool = setting("RATE_LIMITS_ENABLED", True, parse_bool,
                                        help="turn every rate limit on (benchmarks may turn them off)")
    # Enrollment and first login (issue 4); enrollment/config.py turns these into EnrollmentConfig.
    account_fingerprint_key: str = setting(
        "ACCOUNT_FINGERPRINT_KEY", "portico-dev-account-fingerprint-key",
        help="HMAC key of the account-number fingerprints (a dev value by default: set it in "
             "production; changing it breaks matching of stored accounts)", secret=True)
    access_code_key: str = setting(
        "ACCESS_CODE_KEY", "portico-dev-access-code-key",
        help="HMAC key of the stored access-code digests (a dev value by default: set it in production)",
        secret=True)
    access_code_ttl_days: int = setting("ACCESS_CODE_TTL_DAYS", 14, parse_positive_int,
                                        help="days an issued Access Code stays valid")
    verification_link_ttl_hours: int = setting(
        "VERIFICATION_LINK_TTL_HOURS", 48, parse_positive_int,
        help="hours an email-verification link stays valid")
    activation_max_attempts: int = setting(
        "ACTIVATION_MAX_ATTEMPTS", 5, parse_positive_int,
        help="failed Access Code + PIN + Word attempts before the enrollment locks")
    activation_ticket_minutes: int = setting(
        "ACTIVATION_TICKET_MINUTES", 15, parse_positive_int,
        help="minutes a successful first-login check stays valid for setting credentials")
    enrollment_review_companies: list[str] = setting(
        "ENROLLMENT_REVIEW_COMPANIES", (), parse_list,
        help="companies (COUNTRY:TAXID, comma-separated) whose enrollments wait for help-desk review")
    enrollment_review_all: bool = setting("ENROLLMENT_REVIEW_ALL", False, parse_bool,
                                          help="every enrollment waits for help-desk review")
    public_base_url: str | None = setting("PUBLIC_BASE_URL", None,
                                          help="base URL of links in emails (default: OIDC_ISSUER)")
    enrollment_rate_limit_ip: str = setting("ENROLLMENT_RATE_LIMIT_IP", "10 per minute;100 per hour",
                                            help="enrollment submissions allowed per client IP")
    enrollment_rate_limit_target: str = setting(
        "ENROLLMENT_RATE_LIMIT_TARGET", "3 per hour;10 per day",
        help="enrollment submissions allowed per email address")
    activation_rate_limit_ip: str = setting("ACTIVATION_RATE_LIMIT_IP", "10 per minute;60 per hour",
                                            help="first-login attempts allowed per client IP")
    activation_rate_limit_target: str = setting(
        "ACTIVATION_RATE_LIMIT_TARGET", "10 per hour",
        help="first-login attempts allowed per enrollment")
    # Account lifecycle (issue 5); lifecycle/config.py turns these into LifecycleConfig.
    lockout_threshold: int = setting("LOCKOUT_THRESHOLD", 5, parse_positive_int,
                                     help="consecutive wrong passwords that lock a user ID")
    lockout_minutes: int = setting("LOCKOUT_MINUTES", 15, parse_positive_int,
                                   help="minutes a lockout lasts (the help desk may unlock sooner)")
    second_factor_max_failures: int = setting(
        "SECOND_FACTOR_MAX_FAILURES", 100, parse_positive_int,
        help="consecutive wrong second-factor codes after which codes are refused until the "
             "help desk unlocks or resets the factors (NIST SP 800-63B: at most 100); the "
             "temporary lockout and a password reset do not restart this count")
    inactivity_days: int = setting(
        "INACTIVITY_DAYS", 120, parse_positive_int,
        help="days without login before a user ID becomes inactive (a company may set fewer)")
    inactivity_warning_days: int = setting(
        "INACTIVITY_WARNING_DAYS", 14, parse_positive_int,
        help="days before inactivity when the warning email is sent (once per period)")
    helpdesk_phone: str = setting("HELPDESK_PHONE", "+1 202 555 0100",
                                  help="help-desk phone shown to inactive users and in emails")
    helpdesk_hours: str = setting("HELPDESK_HOURS", "Monday to Friday, 9:00 to 18:00",
                                  help="help-desk hours, in English")
    helpdesk_hours_es: str = setting("HELPDESK_HOURS_ES", "de lunes a viernes, de 9:00 a 18:00",
                                     help="help-desk hours, in Spanish")
    clock_offset_days: int = setting(
        "CLOCK_OFFSET_DAYS", 0, int,
        help="days added to the lifecycle clock (staging and browser tests only; never in production)")
    password_reset_ttl_minutes: int = setting("PASSWORD_RESET_TTL_MINUTES", 30, parse_positive_int,
                                              help="lifetime of a password-reset link")
    password_reset_max_answers: int = setting(
        "PASSWORD_RESET_MAX_ANSWERS", 3, parse_positive_int,
        help="wrong security answers that void a reset link")
    password_history: int = setting(
        "PASSWORD_HISTORY", 5, parse_positive_int,
        help="a new password may not be any of this many latest passwords")
    email_change_ttl_hours: int = setting("EMAIL_CHANGE_TTL_HOURS", 24, parse_positive_int,
                                          help="lifetime of the link that confirms a new email address")
    recovery_rate_limit_ip: str = setting("RECOVERY_RATE_LIMIT_IP", "5 per minute;30 per hour",
                                          help="password-reset and username-reminder requests per client IP")
    recovery_rate_limit_target: str = setting(
        "RECOVERY_RATE_LIMIT_TARGET", "3 per hour;10 per day",
        help="password-reset and username-reminder requests per username or email")
    link_rate_limit_ip: str = setting("LINK_RATE_LIMIT_IP", "30 per minute;300 per hour",
                                      help="requests carrying an emailed token, per client IP")
    # Branding of the pages a person sees (issue 29); the notifier's emails read the same
    # BRAND_NAME and BRAND_LOGO.
    brand_name: str = setting("BRAND_NAME", "Portico",
                              help="the program's name in the pages' header and titles, and in emails")
    brand_logo: str = setting(
        "BRAND_LOGO", "", parse_logo,
        help="the logo: an image file on identity's disk (served at /brand/logo) or an http(s) "
             "URL on the deployment's own host (the pages' CSP allows images from 'self' "
             "only); empty: Portico's")
    brand_primary_color: str = setting(
        "BRAND_PRIMARY_COLOR", "#1f5fa8", parse_color,
        help="primary colour (hex) of the header bar, buttons and links; the text on it "
             "and the links are adjusted to keep WCAG AA contrast")
    mfa_prompt_snooze_days: int = setting(
        "MFA_PROMPT_SNOOZE_DAYS", 7, parse_positive_int,
        help="days a \"Not now\" on the after-sign-in \"add a passkey\" page keeps it away "
             "(never past the day a company's MFA policy binds the user)")
    mfa_prompt_optional: bool = setting(
        "MFA_PROMPT_OPTIONAL", True, parse_bool,
        help="after sign-in, offer a user without a second factor whose company's MFA policy "
             "is optional (or who has no company) to add one, skippably; a policy that "
             "requires a factor asks whatever this says")
    # Passkeys (issue 26); factors/passkeys.py turns these into PasskeyConfig.
    webauthn_rp_id: str = setting(
        "WEBAUTHN_RP_ID", _webauthn_rp_id_default,
        help="WebAuthn relying-party id: the domain passkeys are bound to (the pages' host or "
             "a parent domain of it; changing it orphans every registered passkey)")
    webauthn_rp_name: str = setting("WEBAUTHN_RP_NAME", _webauthn_rp_name_default,
                                    help="the name an authenticator shows for this site")
    webauthn_origins: list[str] = setting(
        "WEBAUTHN_ORIGINS", _webauthn_origins_default, parse_list,
        help="origins (comma-separated, scheme://host[:port]) allowed to sign passkey "
             "ceremonies")
    webauthn_timeout_seconds: int = setting(
        "WEBAUTHN_TIMEOUT_SECONDS", 300, parse_positive_int,
        help="seconds a passkey ceremony (its single-use challenge) stays valid")
