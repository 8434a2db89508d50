"""Every page a person sees, in English and Spanish, in the one layout (issue 29): the
brand in the header, the help desk and the language switch in the footer, styles from
'self' only; the sign-in page's links; the language switch keeping the authorization
request; the branding settings."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.integration.helpers.enrollment import PIN, WORD, access_code, valid_body
from tests.integration.helpers.identity import events, unseal
from tests.integration.helpers.lifecycle import csrf_of
from tests.integration.helpers.oidc import add_client, code_params

PASSWORD = "Lantern-Orchid-Meadow-77"
HELPDESK = {"en": "Help desk:", "es": "Mesa de ayuda:"}


@pytest.fixture
def app(lifecycle_app):
    return lifecycle_app


class Tour:
    """Visits pages with ``ui_locales=<lang>`` and keeps each one's HTML by name."""

    def __init__(self, client, lang: str) -> None:
        self.client = client
        self.lang = lang
        self.pages: dict[str, str] = {}

    def get(self, name: str, path: str, status: int = 200, **query: str):
        answer = self.client.get(path, query_string={**query, "ui_locales": self.lang})
        return self._keep(name, answer, status)

    def post(self, name: str | None, path: str, data: dict, status: int, **query: str):
        answer = self.client.post(path, data=data,
                                  query_string={**query, "ui_locales": self.lang})
        return self._keep(name, answer, status)

    def _keep(self, name, answer, status):
        assert answer.status_code == status, (name, answer.status_code, answer.text[:500])
        if name:
            self.pages[name] = answer.text
        return answer


def enrollment_form(csrf: str, email: str) -> dict:
    body = valid_body(email=email)
    company, address = body["company"], body["company"]["address"]
    return {"csrf_token": csrf, **{k: body[k] for k in (
        "given_name", "family_name", "phone", "job_title", "preferred_language", "pin",
        "verification_word")}, "email": email,
        "company_name": company["name"], "tax_id": company["tax_id"],
        "address_line1": address["line1"], "city": address["city"],
        "region": address["region"], "postal_code": address["postal_code"],
        "country": address["country"], "account_numbers": body["account_numbers"]}


def tour(app, client, clock, lang: str) -> dict[str, str]:
    """Every page, in the order a person meets them."""
    t = Tour(client, lang)
    username = f"lucia.{lang}"
    # Sign-in page, and a refusal.
    login = t.get("sign in", "/login")
    t.post("sign in refused", "/login", {"csrf_token": csrf_of(login.text),
                                         "username": "nobody", "password": "wrong-Password-1"},
           401)
    # Enrollment, email confirmation, first login, credentials.
    page = t.get("enroll", "/enroll")
    t.post("enrollment received", "/enroll",
           enrollment_form(csrf_of(page.text), f"{username}@example.mx"), 201)
    url = unseal(app, events(app, "identity.enrollment.submitted")[-1])["verification_url"]
    token = re.search(r"token=([^&]+)", url).group(1)
    page = t.get("confirm email", "/enroll/verify", token=token)
    t.post("email confirmed", "/enroll/verify", {"csrf_token": csrf_of(page.text),
                                                 "token": token}, 200)
    t.post("link cannot be used", "/enroll/verify", {"csrf_token": csrf_of(page.text),
                                                     "token": token}, 400)
    page = t.get("first login", "/activate")
    moved = t.post(None, "/activate", {"csrf_token": csrf_of(page.text),
                                       "access_code": access_code(app), "pin": PIN,
                                       "verification_word": WORD}, 303)
    page = t.get("credentials", urlsplit(moved.headers["Location"]).path)
    t.post("user ID active", "/activate/credentials", {
        "csrf_token": csrf_of(page.text), "username": username, "password": PASSWORD,
        "password_confirm": PASSWORD, "question_1": "first_pet", "answer_1": "Rex",
        "question_2": "birth_city", "answer_2": "Toluca", "question_3": "first_job",
        "answer_3": "Cashier"}, 201)
    # Recovery.
    page = t.get("forgot password", "/forgot-password")
    t.post("check your email", "/forgot-password", {"csrf_token": csrf_of(page.text),
                                                    "username_or_email": username}, 202)
    url = unseal(app, events(app, "identity.password_reset.requested")[-1])["reset_url"]
    t.get("choose a new password", "/reset-password", token=re.search(r"token=([^&]+)", url)[1])
    t.get("forgot username", "/forgot-username")
    # Signed in: account, consents, a relying party's consent, sign out.
    login = client.get("/login")
    assert client.post("/login", data={"csrf_token": csrf_of(login.text), "username": username,
                                       "password": PASSWORD}).status_code == 303
    t.get("account", "/account")
    t.get("confirm new email", "/account/email/verify", token="x" * 40)
    t.get("consents", "/account/consents")
    client_id, _secret = add_client(app, first_party=False)
    t.get("consent", "/authorize", **code_params(client_id))
    t.get("error", "/logout", 400, id_token_hint="not-a-token")
    page = t.get("sign out", "/logout")
    t.post("signed out", "/logout", {"csrf_token": csrf_of(page.text), "confirm": "yes"}, 200)
    # 121 days later the user ID is inactive.
    clock.advance(days=121)
    login = client.get("/login")
    t.post("inactive", "/login", {"csrf_token": csrf_of(login.text), "username": username,
                                  "password": PASSWORD}, 403)
    clock.advance(days=-121)  # the next tour's user is new again
    return t.pages


def h1(html: str) -> str:
    return unescape(re.search(r"<h1>(.*?)</h1>", html, re.S).group(1).strip())


@pytest.fixture
def tours(app, client, clock) -> dict[str, dict[str, str]]:
    return {lang: tour(app, app.test_client(), clock, lang) for lang in ("en", "es")}


def test_every_page_has_the_layout_in_both_languages(tours):
    assert len(tours["en"]) == len(tours["es"]) == 22
    for lang, pages in tours.items():
        for name, html in pages.items():
            where = f"{name} ({lang})"
            assert f'<html lang="{lang}">' in html, where
            assert html.count("<h1>") == 1, where
            assert 'class="site-header"' in html and '<span class="brand-name">Portico</span>' in html, where
            assert "· Portico</title>" in html, where
            assert f'<p id="helpdesk">{HELPDESK[lang]} <a href="tel:+12025550100">+1 202 555 0100</a>' in html, where
            assert 'id="language-en"' in html and 'id="language-es"' in html, where
            assert re.search(rf'id="language-{lang}"[^>]*aria-current="true"', html), where
            assert '/static/portico.css' in html and '/brand.css' in html, where
            # The CSP allows styles from 'self' only: no inline style anywhere.
            assert "<style" not in html and " style=" not in html, where


def test_every_page_is_translated(tours):
    same = [name for name in tours["en"] if h1(tours["en"][name]) == h1(tours["es"][name])]
    assert not same, f"these pages' titles are not translated: {same}"
    assert "de lunes a viernes, de 9:00 a 18:00" in tours["es"]["sign in"]
    assert "¿Olvidó su Contraseña?" in tours["es"]["sign in"]
    assert "Código de Acceso" in tours["es"]["first login"]
    assert "Pin de Verificación" in tours["es"]["first login"]


def test_the_sign_in_page_links_every_way_on(client):
    for lang, texts in {"en": ("Forgot password?", "Forgot username?",
                               "First time here? Sign in with your Access Code", "Enroll"),
                        "es": ("¿Olvidó su Contraseña?", "¿Olvidó su nombre de usuario?",
                               "¿Es su primera vez? Ingrese con su Código de Acceso",
                               "Inscribirse")}.items():
        html = unescape(client.get(f"/login?ui_locales={lang}").text)
        links = dict(re.findall(r'<a id="[^"]+" href="([^"]+)">([^<]+)</a>', html))
        assert {urlsplit(href).path: text for href, text in links.items()} == {
            "/forgot-password": texts[0], "/forgot-username": texts[1],
            "/activate": texts[2], "/enroll": texts[3]}, links
        assert all(f"ui_locales={lang}" in href for href in links)
        for href in links:
            assert client.get(href).status_code == 200, href


def test_refusals_and_help_pages_name_the_help_desk(app, client):
    login = client.get("/login")
    refused = client.post("/login", data={"csrf_token": csrf_of(login.text),
                                          "username": "nobody", "password": "x" * 12})
    alert = re.search(r'<p class="error" role="alert" id="login-error">(.*?)</p>', refused.text,
                      re.S).group(1)
    assert "help desk" in alert and "+1 202 555 0100" in alert
    assert 'aria-describedby="login-error"' in refused.text
    activate = client.get("/activate").text
    assert re.search(r'id="activation-help">\s*<p>Lost your Access Code.*\+1 202 555 0100',
                     activate, re.S)
    assert "Call the help desk at +1 202 555 0100" in client.get("/forgot-username").text


def test_the_language_switch_keeps_the_authorization_request(client):
    authorize = "/authorize?response_type=code&client_id=rp&state=s%201&ui_locales=en"
    html = client.get("/login", query_string={"next": authorize}).text
    assert '<html lang="en">' in html
    spanish = unescape(re.search(r'<a href="([^"]+)" lang="es"', html).group(1))
    query = parse_qs(urlsplit(spanish).query)
    assert query["ui_locales"] == ["es"]
    returns_to = urlsplit(query["next"][0])
    assert returns_to.path == "/authorize"
    assert parse_qs(returns_to.query) == {"response_type": ["code"], "client_id": ["rp"],
                                          "state": ["s 1"], "ui_locales": ["es"]}
    page = client.get(spanish)
    assert '<html lang="es">' in page.text and "<h1>Iniciar sesión</h1>" in page.text
    hidden_next = unescape(re.search(r'name="next" value="([^"]+)"', page.text).group(1))
    assert hidden_next == query["next"][0]
    # Without ui_locales anywhere the browser's language is used.
    page = client.get("/login", headers={"Accept-Language": "es-MX,es;q=0.9"})
    assert "<h1>Iniciar sesión</h1>" in page.text


def test_a_switch_on_a_posted_page_keeps_what_the_page_needs_and_no_secret(client):
    login = client.get("/login?next=/account")
    refused = client.post("/login", data={"csrf_token": csrf_of(login.text), "next": "/account",
                                          "username": "ana", "password": "secret-Password-1"})
    spanish = unescape(re.search(r'<a href="([^"]+)" lang="es"', refused.text).group(1))
    assert parse_qs(urlsplit(spanish).query) == {"next": ["/account?ui_locales=es"],
                                                 "ui_locales": ["es"]}


def test_pages_allow_styles_from_self_only(client):
    page = client.get("/login")
    policy = page.headers["Content-Security-Policy"]
    assert "style-src 'self';" in policy and "unsafe-inline" not in policy
    css = client.get("/static/portico.css")
    assert css.status_code == 200 and css.mimetype == "text/css"
    assert client.get("/static/vendor/modern-normalize/modern-normalize.css").status_code == 200
    brand = client.get("/brand.css")
    assert brand.mimetype == "text/css"
    assert brand.text == ":root{--brand:#1f5fa8;--brand-contrast:#ffffff;--brand-link:#1f5fa8}\n"


def test_the_built_in_logo_is_served_for_the_pages_and_the_emails(client):
    html = client.get("/login").text
    assert '<img src="/static/portico-logo.svg" alt=""' in html
    logo = client.get("/brand/logo")
    assert logo.status_code == 200 and logo.mimetype == "image/png"


def test_branding_settings(make_app, tmp_path):
    logo = tmp_path / "acme.png"
    logo.write_bytes(b"\x89PNG\r\n\x1a\n acme")
    app = make_app("identity", brand_name="Acme Cards", brand_logo=str(logo),
                   brand_primary_color="#ffcc00")
    client = app.test_client()
    html = client.get("/login").text
    assert "<title>Sign in · Acme Cards</title>" in html
    assert '<span class="brand-name">Acme Cards</span>' in html
    assert '<img src="/brand/logo" alt=""' in html
    served = client.get("/brand/logo")
    assert served.data == logo.read_bytes() and served.mimetype == "image/png"
    # A light primary colour: dark text on the buttons, links darkened to read on white.
    css = client.get("/brand.css").text
    assert "--brand:#ffcc00;--brand-contrast:#000000;" in css
    link = re.search(r"--brand-link:(#[0-9a-f]{6})", css).group(1)
    assert link != "#ffcc00"


def test_a_logo_url_is_used_as_it_is(make_app):
    app = make_app("identity", brand_logo="https://id.example.com/assets/logo.svg")
    client = app.test_client()
    assert '<img src="https://id.example.com/assets/logo.svg"' in client.get("/login").text
    moved = client.get("/brand/logo")
    assert moved.status_code == 302
    assert moved.headers["Location"] == "https://id.example.com/assets/logo.svg"


def test_the_error_page_translates_and_escapes_the_message_it_is_given(app):
    from flask import render_template

    with app.test_request_context("/?ui_locales=es"):
        html = render_template("error.html", message="The form expired.")
        assert "El formulario caducó." in html
        html = render_template("error.html", message='<img src=x onerror="alert(1)"> 100%')
        assert "&lt;img src=x" in html and "<img src=x" not in html and "100%" in html


def test_authorization_errors_are_told_in_spanish(app):
    """The error page's own refusals (unknown client, unregistered redirect URI) and
    authlib's, which carry an English description for developers, read in Spanish."""
    from authlib.oauth2.rfc6749.errors import UnsupportedResponseTypeError

    from services.identity.views.oauth import _refused

    client = app.test_client()
    unknown = client.get("/authorize", query_string={
        "client_id": "nobody", "response_type": "code", "ui_locales": "es",
        "redirect_uri": "https://evil.example/cb"})
    assert unknown.status_code == 400
    assert "La aplicación no es conocida aquí." in unescape(unknown.text)
    assert "Unknown client." not in unknown.text

    with app.test_request_context("/authorize?ui_locales=es"):
        answer = _refused(UnsupportedResponseTypeError("token"))
        html = unescape(answer.get_data(as_text=True))
    assert answer.status_code == 400
    assert "La aplicación pidió un tipo de inicio de sesión que este servicio no ofrece." in html
    assert "Detalles para quienes desarrollan la aplicación" in html
    assert '<p lang="en">response_type=token is not supported</p>' in html

