"""HTTP steps of the user journey, as any client of Portico takes them: JSON APIs,
the login form, OAuth 2.0 with authlib's client, and the emails the SMTP sink saved."""

from __future__ import annotations

import html
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urljoin

import pyotp
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

T = TypeVar("T")

PIN = "4071"
WORD = "Ñandú"
PASSWORD = "Velvet-Harbor-42!"  # noqa: S105 - test data
REDIRECT_URI = "http://127.0.0.1:9/callback"  # never fetched: the redirect is read, not followed
APP_SCOPE = "openid profile email entitlements tracking.read"
TIMEOUT = 15


def eventually(probe: Callable[[], T | None], *, within: float = 30.0, every: float = 0.25,
               what: str = "condition") -> T:
    """``probe()``'s first truthy answer, polling; fails after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:.0f} s waiting for {what}")
        time.sleep(every)


# -- mail --------------------------------------------------------------------------
@dataclass(frozen=True)
class Mail:
    name: str
    to: str
    subject: str
    message_id: str
    text: str


_parsed: dict[Path, Mail] = {}  # a saved message never changes: parse each file once


def read_mail(directory: Path) -> list[Mail]:
    """Every message the sink saved (half-written files are hidden by the sink)."""
    mails = []
    for path in sorted(directory.glob("*.eml")):
        if path not in _parsed:
            with open(path, "rb") as handle:
                message = BytesParser(policy=policy.default).parse(handle)
            body = message.get_body(preferencelist=("plain",))
            _parsed[path] = Mail(
                name=path.stem, to=str(message["X-RcptTo"] or message["To"]).lower(),
                subject=str(message["Subject"]), message_id=str(message["Message-ID"] or ""),
                text=body.get_content() if body is not None else "")
        mails.append(_parsed[path])
    return mails


def wait_for_mail(directory: Path, to: str, subject: str, within: float = 30.0) -> Mail:
    def probe() -> Mail | None:
        found = [m for m in read_mail(directory) if to.lower() in m.to and subject in m.subject]
        return found[-1] if found else None

    return eventually(probe, within=within, what=f"an email '{subject}' to {to}")


def verification_token(mail: Mail) -> str:
    return re.search(r"/enroll/verify\?token=([A-Za-z0-9_\-]+)", mail.text).group(1)


def access_code(mail: Mail) -> str:
    return re.search(r"Access Code: ([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})",
                     mail.text).group(1)


# -- enrollment and first login ------------------------------------------------------
def enrollment_body(email: str, given_name: str, *, tax_id: str = "12-3456789",
                    company: str = "Acme Travel Inc.",
                    account: str = "378282246310005") -> dict[str, Any]:
    return {"given_name": given_name, "family_name": "Tester", "email": email,
            "phone": "+1 202 555 0143", "job_title": "Finance manager",
            "preferred_language": "en",
            "company": {"name": company, "tax_id": tax_id,
                        "address": {"line1": "1 Main St", "city": "Springfield", "region": "IL",
                                    "postal_code": "62701", "country": "US"}},
            "account_numbers": [account], "pin": PIN, "verification_word": WORD}


def enroll(identity: str, email: str, given_name: str, http: Any = requests,
           **company: str) -> dict[str, Any]:
    """``company``: ``tax_id``, ``company`` (its name) or ``account`` of enrollment_body."""
    answer = http.post(f"{identity}/v1/enrollments",
                       json=enrollment_body(email, given_name, **company), timeout=TIMEOUT)
    assert answer.status_code == 201, answer.text
    return answer.json()


@dataclass(frozen=True)
class Member:
    username: str
    user_id: str
    email: str
    enrollment_tracking_number: str


def enroll_and_activate(identity: str, mail_dir: Path, email: str, given_name: str,
                        **company: str) -> Member:
    """Enroll → confirmation email → verify → welcome email's Access Code → activation →
    credentials. Every step over HTTP; the emails come from the real notifier worker.
    ``company``: ``tax_id``/``company`` of :func:`enrollment_body`."""
    submitted = enroll(identity, email, given_name, **company)
    assert submitted["status"] == "submitted"
    token = verification_token(wait_for_mail(mail_dir, email, "Confirm your email"))
    verified = requests.post(f"{identity}/v1/enrollments/verify", json={"token": token},
                             timeout=TIMEOUT)
    assert verified.status_code == 200, verified.text
    assert verified.json()["status"] == "code_issued"
    assert verified.json()["tracking_number"] == submitted["tracking_number"]
    code = access_code(wait_for_mail(mail_dir, email, "Access Code"))

    ticket = requests.post(f"{identity}/v1/activation", json={
        "access_code": code, "pin": PIN, "verification_word": WORD.lower()}, timeout=TIMEOUT)
    assert ticket.status_code == 200, ticket.text
    username = email.split("@")[0].replace("+", ".")
    created = requests.post(f"{identity}/v1/activation/credentials", json={
        "activation_token": ticket.json()["activation_token"], "username": username,
        "password": PASSWORD, "password_confirm": PASSWORD,
        "security_questions": [{"question": "first_pet", "answer": "Rex"},
                               {"question": "birth_city", "answer": "Toluca"},
                               {"question": "first_job", "answer": "Cashier"}]},
        timeout=TIMEOUT)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["tracking_number"] == submitted["tracking_number"]
    return Member(username=username, user_id=body["user_id"], email=email,
                  enrollment_tracking_number=submitted["tracking_number"])


# -- OAuth clients and tokens --------------------------------------------------------
def client_credentials_token(identity: str, client_id: str, client_secret: str,
                             audience: str | None = None) -> str:
    data = {"grant_type": "client_credentials"}
    if audience:
        data["resource"] = audience
    answer = requests.post(f"{identity}/token", data=data, auth=(client_id, client_secret),
                           timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    return answer.json()["access_token"]


def register_client(identity: str, admin_token: str, spec: dict[str, Any]) -> dict[str, Any]:
    """POST /admin/v1/clients (scope iam.admin): the client with its secret (shown once)."""
    answer = requests.post(f"{identity}/admin/v1/clients", json=spec, timeout=TIMEOUT,
                           headers={"Authorization": f"Bearer {admin_token}"})
    assert answer.status_code == 201, answer.text
    return answer.json()


def app_client_spec() -> dict[str, Any]:
    """An internal app like the portal: code + PKCE, tokens for permissions and tracking."""
    return {"name": "e2e internal app", "redirect_uris": [REDIRECT_URI],
            "grant_types": ["authorization_code", "refresh_token"], "scope": APP_SCOPE,
            "token_endpoint_auth_method": "client_secret_basic", "first_party": True,
            "allowed_audiences": ["permissions", "tracking"]}


def operator_client_spec() -> dict[str, Any]:
    """A help-desk operator tool: client_credentials with ``permissions.admin``."""
    return {"name": "e2e help desk console", "grant_types": ["client_credentials"],
            "scope": "permissions.admin", "token_endpoint_auth_method": "client_secret_basic",
            "first_party": True, "allowed_audiences": ["permissions"]}


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def login_form(browser: requests.Session, login_page_url: str, username: str,
               password: str = PASSWORD) -> requests.Response:
    """GET the login form (for its CSRF token), then POST it; the answer is not followed."""
    page = browser.get(login_page_url, timeout=TIMEOUT)
    assert page.status_code == 200, page.text
    nxt = re.search(r'name="next" value="([^"]*)"', page.text)
    return browser.post(urljoin(login_page_url, "/login"), data={
        "username": username, "password": password, "csrf_token": csrf_of(page.text),
        "next": html.unescape(nxt.group(1)) if nxt else ""},
        allow_redirects=False, timeout=TIMEOUT)


def set_up_totp(identity: str, browser: requests.Session) -> str:
    """The signed-in user of ``browser`` sets up an authenticator app at /account/security
    (within five minutes of signing in); its secret."""
    page = browser.get(f"{identity}/account/security", timeout=TIMEOUT)
    begun = browser.post(f"{identity}/account/security/totp", allow_redirects=False,
                         data={"csrf_token": csrf_of(page.text)}, timeout=TIMEOUT)
    assert begun.status_code == 303, begun.text
    page = browser.get(f"{identity}/account/security", timeout=TIMEOUT)
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page.text).group(1)
    confirmed = browser.post(f"{identity}/account/security/totp/confirm", timeout=TIMEOUT,
                             data={"csrf_token": csrf_of(page.text),
                                   "code": pyotp.TOTP(secret).now()})
    assert confirmed.status_code == 200, confirmed.text
    return secret


def _second_step(identity: str, browser: requests.Session, location: str,
                 totp_secret: str) -> requests.Response:
    """Identity's second step (``location``) with the app's code of the next 30-second
    step (the current one may be used already); the answer, not followed."""
    page = browser.get(urljoin(identity, location), timeout=TIMEOUT)
    nxt = re.search(r'name="next" value="([^"]*)"', page.text)
    done = browser.post(f"{identity}/login/second-factor", allow_redirects=False,
                        timeout=TIMEOUT, data={
                            "code": pyotp.TOTP(totp_secret).at(time.time() + 30),
                            "next": html.unescape(nxt.group(1)), "csrf_token": csrf_of(page.text)})
    assert done.status_code == 303, done.text
    return done


def oidc_login(identity: str, client: dict[str, Any], username: str,
               login_at: str | None = None,
               browser: requests.Session | None = None,
               password: str = PASSWORD, totp_secret: str | None = None,
               **params: str) -> dict[str, Any]:
    """Authorization code + PKCE (S256) with authlib's OAuth2Session; ``browser`` (its
    cookies are the identity session) follows the redirects and posts the login form at
    ``login_at`` (default: the same identity), and the second step with a code of
    ``totp_secret`` when identity asks for it (``params``: more of the authorization
    request, e.g. ``acr_values``). Returns the token response."""
    browser = browser or requests.Session()
    oauth = OAuth2Session(client["client_id"], client["client_secret"], scope=APP_SCOPE,
                          redirect_uri=REDIRECT_URI, code_challenge_method="S256")
    verifier = generate_token(48)
    url, state = oauth.create_authorization_url(f"{identity}/authorize", code_verifier=verifier,
                                                nonce=secrets.token_urlsafe(16), **params)
    answer = browser.get(url, allow_redirects=False, timeout=TIMEOUT)
    assert answer.status_code == 302, answer.text
    if answer.headers["Location"].startswith("/login/second-factor"):
        assert totp_secret is not None, "identity asked for a second factor"
        done = _second_step(identity, browser, answer.headers["Location"], totp_secret)
        answer = browser.get(urljoin(identity, done.headers["Location"]), allow_redirects=False,
                             timeout=TIMEOUT)
        assert answer.status_code == 302, answer.text
    elif "/login" in answer.headers["Location"].split("?")[0]:
        done = login_form(browser, urljoin(login_at or identity, answer.headers["Location"]),
                          username, password)
        assert done.status_code == 303, done.text
        answer = browser.get(urljoin(identity, done.headers["Location"]), allow_redirects=False,
                             timeout=TIMEOUT)
        assert answer.status_code == 302, answer.text
    back = answer.headers["Location"]
    assert back.startswith(REDIRECT_URI + "?"), back
    return oauth.fetch_token(f"{identity}/token", authorization_response=back, state=state,
                             code_verifier=verifier)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sections(permissions: str, user_id: str, token: str) -> set[str]:
    """The keys of ``user_id``'s home-page sections, as permissions answers them."""
    answer = requests.get(f"{permissions}/v1/users/{user_id}/home", headers=bearer(token),
                          timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    return {section["key"] for section in answer.json()["sections"]}


def tracked(tracking: str, number: str, token: str) -> dict | None:
    """The transaction ``number`` if tracking shows it to the token's holder, else None."""
    answer = requests.get(f"{tracking}/v1/transactions/{number}", headers=bearer(token),
                          timeout=TIMEOUT)
    return answer.json() if answer.status_code == 200 else None


def register_apps(suite: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """With the bootstrap admin client, register an internal app (code + PKCE) and a
    help-desk operator tool (client_credentials): both with their secrets."""
    identity = suite.url("identity")
    admin = suite.bootstrap()["admin_client"]
    admin_token = client_credentials_token(identity, admin["client_id"], admin["client_secret"])
    return (register_client(identity, admin_token, app_client_spec()),
            register_client(identity, admin_token, operator_client_spec()))
