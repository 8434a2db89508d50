"""Complete sign-ins as a browser and the client's back end do them, for ``run_flow``:
authorize → the login page → the user proves who they are (a password, or a passkey with
no password) → back to /authorize for the code → the code exchanged for tokens (PKCE S256).

The passkeys are answered by the tests' software authenticator (``tests.support_webauthn``,
a plain import as ``bench.fixtures`` imports ``tests.support``): the same ``cryptography``
ES256 key and ``toJSON()`` answers the integration tests check the server against.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
from collections.abc import Callable
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import requests

from bench.fixtures import IdentityFixture
from tests.support_webauthn import SoftAuthenticator

# Given the session and the login page, the URL to go back to once signed in (None: failed).
SignIn = Callable[[requests.Session, requests.Response], "str | None"]


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def hidden(page: str, name: str) -> str | None:
    """A hidden form field of ``page`` (HTML), unescaped as a browser would post it."""
    match = re.search(rf'name="{name}" value="([^"]+)"', page)
    return match.group(1).replace("&amp;", "&") if match else None


class Failures(list):
    """The first failure of a flow's run (what answered, with which status): one is enough
    to look into, and the server's log has the rest."""

    def note(self, what: str, response: requests.Response) -> None:
        if not self:
            self.append(f"{what} answered {response.status_code}")


def flow(base: str, fixture: IdentityFixture, failures: Failures,
         sign_in: SignIn) -> Callable[[requests.Session], bool]:
    """A ``run_flow`` step: one complete authorization-code flow against ``base`` whose
    sign-in is ``sign_in``; True when it ended with an ID token."""

    def step(session: requests.Session) -> bool:
        session.cookies.clear()
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(
            hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        query = urlencode({"response_type": "code", "client_id": fixture.rp_client_id,
                           "redirect_uri": fixture.redirect_uri, "scope": "openid profile email",
                           "state": secrets.token_urlsafe(8), "nonce": secrets.token_urlsafe(8),
                           "code_challenge": challenge, "code_challenge_method": "S256"})
        first = session.get(f"{base}/authorize?{query}", allow_redirects=False, timeout=10)
        if first.status_code != 302:
            failures.note("GET /authorize", first)
            return False
        page = session.get(urljoin(base, first.headers["Location"]), timeout=10)
        if page.status_code != 200 or not hidden(page.text, "csrf_token"):
            failures.note("GET /login", page)
            return False
        then = sign_in(session, page)
        if then is None:
            return False
        back = session.get(urljoin(base, then), allow_redirects=False, timeout=10)
        code = parse_qs(urlsplit(back.headers.get("Location", "")).query).get("code")
        if back.status_code != 302 or not code:
            failures.note("GET /authorize after login", back)
            return False
        token = session.post(f"{base}/token", data={
            "grant_type": "authorization_code", "code": code[0],
            "redirect_uri": fixture.redirect_uri, "code_verifier": verifier},
            headers={"Authorization": basic(fixture.rp_client_id, fixture.rp_secret)},
            timeout=10)
        if token.status_code != 200 or "id_token" not in token.json():
            failures.note("POST /token (code)", token)
            return False
        return True

    return step


def password_sign_in(fixture: IdentityFixture, failures: Failures) -> SignIn:
    """The login form posted with a user's password (the users in turn)."""
    counter = [0]

    def sign_in(session: requests.Session, page: requests.Response) -> str | None:
        counter[0] += 1
        fields = {"csrf_token": hidden(page.text, "csrf_token") or "",
                  "username": fixture.usernames[counter[0] % len(fixture.usernames)],
                  "password": fixture.password}
        if next_url := hidden(page.text, "next"):
            fields["next"] = next_url
        login = session.post(page.url, data=fields, allow_redirects=False, timeout=10)
        if login.status_code != 303:
            failures.note("POST /login", login)
            return None
        return login.headers["Location"]

    return sign_in


class Authenticators:
    """One software authenticator per bench user, each lent to one thread at a time.

    A passkey's signature counter must only grow: the server refuses an assertion whose
    counter is not above the stored one (a cloned authenticator), so two threads sharing
    one would race their counters. A thread keeps the one it first took; one whose thread
    has ended is free again (each ``run_flow`` starts threads of its own).
    """

    def __init__(self, origin: str, usernames: list[str]) -> None:
        self.origin = origin
        self.usernames = usernames
        self.authenticators = [SoftAuthenticator(origin) for _ in usernames]
        self._holders: list[threading.Thread | None] = [None] * len(usernames)
        self._lock = threading.Lock()
        self._mine = threading.local()

    def mine(self) -> SoftAuthenticator:
        """The calling thread's authenticator (RuntimeError: more threads than users)."""
        held = getattr(self._mine, "authenticator", None)
        if held is not None:
            return held
        with self._lock:
            free = next((i for i, holder in enumerate(self._holders)
                         if holder is None or not holder.is_alive()), None)
            if free is None:
                raise RuntimeError(f"more threads than the {len(self.usernames)} passkey users")
            self._holders[free] = threading.current_thread()
        self._mine.authenticator = self.authenticators[free]
        return self._mine.authenticator

    def register(self, base: str, password: str) -> None:
        """Add each user's passkey over HTTP, as /account/security's script does: sign in
        with the password, ask for creation options, post the created credential."""
        for username, authenticator in zip(self.usernames, self.authenticators, strict=True):
            with requests.Session() as session:
                page = session.get(f"{base}/login", timeout=10)
                login = session.post(page.url, allow_redirects=False, timeout=10, data={
                    "csrf_token": hidden(page.text, "csrf_token") or "",
                    "username": username, "password": password})
                if login.status_code != 303:
                    raise RuntimeError(f"{username}: POST /login answered {login.status_code}")
                security = session.get(f"{base}/account/security", timeout=10)
                csrf = hidden(security.text, "csrf_token") or ""
                options = session.post(f"{base}/account/security/passkeys/options", json={},
                                       headers={"X-CSRF-Token": csrf}, timeout=10)
                if options.status_code != 200:
                    raise RuntimeError(f"{username}: passkey options answered "
                                       f"{options.status_code}: {options.text[:200]}")
                added = session.post(f"{base}/account/security/passkeys", timeout=10,
                                     allow_redirects=False, data={
                                         "csrf_token": csrf, "name": "bench",
                                         "credential": json.dumps(authenticator.create(
                                             options.text))})
                if added.status_code != 200:  # the page again, with the passkey added
                    raise RuntimeError(f"{username}: adding the passkey answered "
                                       f"{added.status_code}")


def passkey_sign_in(authenticators: Authenticators, failures: Failures) -> SignIn:
    """A passwordless sign-in from the login page: request options (the session's CSRF
    token in the header), the thread's authenticator answers, the assertion posted."""

    def sign_in(session: requests.Session, page: requests.Response) -> str | None:
        base = urljoin(page.url, "/")
        headers = {"X-CSRF-Token": hidden(page.text, "csrf_token") or ""}
        options = session.post(urljoin(base, "/login/passkey/options"), json={},
                               headers=headers, timeout=10)
        if options.status_code != 200:
            failures.note("POST /login/passkey/options", options)
            return None
        assertion = authenticators.mine().get(options.text)
        signed_in = session.post(urljoin(base, "/login/passkey"), headers=headers, timeout=10,
                                 json={"credential": assertion,
                                       "next": hidden(page.text, "next")})
        if signed_in.status_code != 200:
            failures.note("POST /login/passkey", signed_in)
            return None
        return signed_in.json()["redirect"]

    return sign_in
