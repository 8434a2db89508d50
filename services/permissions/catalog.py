"""The seeded catalog: entitlements, roles and home-page sections.

Only company entitlements live here. Platform powers (help desk, platform
administration, audit) are platform roles (:mod:`platform`), never in a catalog.

Migration 0002 inserts a frozen copy of these rows; :func:`seed_catalog` inserts the
same rows (idempotently) where the schema was built from the models, as in tests.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common.acr import MULTI_FACTOR

from .models import Entitlement, HomeSection, Role, RoleEntitlement

# key, description_en, description_es, category, account_scopable
ENTITLEMENTS: list[tuple[str, str, str, str, bool]] = [
    ("cards.view", "View cards", "Ver tarjetas", "cards", True),
    ("cards.cancel", "Cancel cards", "Cancelar tarjetas", "cards", True),
    ("cards.request", "Request new cards", "Solicitar tarjetas nuevas", "cards", True),
    ("transactions.track", "Track your own requests and transactions",
     "Seguir sus propias solicitudes y transacciones", "tracking", False),
    ("transactions.track_company", "See the company's requests and transactions",
     "Ver las solicitudes y transacciones de la empresa", "tracking", False),
    ("reports.view", "View reports", "Ver informes", "reports", True),
    ("reports.export", "Export reports", "Exportar informes", "reports", True),
    ("contacts.update", "Update own contact details", "Actualizar sus datos de contacto",
     "profile", False),
    ("users.view", "View the company's users", "Ver los usuarios de la empresa", "users", False),
    ("users.manage", "Manage the company's users", "Administrar los usuarios de la empresa",
     "users", False),
    ("entitlements.request", "Request entitlements", "Solicitar permisos", "entitlements", False),
    ("entitlements.approve", "Review entitlement requests", "Revisar solicitudes de permisos",
     "entitlements", False),
]

# Entitlements a check allows only to a token at this level or above (a step-up
# otherwise). MULTI_FACTOR, not PHISHING_RESISTANT: a user with an authenticator app
# alone must still be able to reach it.
REQUIRED_LEVELS: dict[str, str] = {
    "cards.cancel": MULTI_FACTOR,
    "entitlements.approve": MULTI_FACTOR,
}

# key, name_en, name_es, entitlements
ROLES: list[tuple[str, str, str, list[str]]] = [
    ("program_administrator", "Program administrator", "Administrador del programa",
     ["cards.view", "cards.cancel", "cards.request", "transactions.track",
      "transactions.track_company", "reports.view",
      "reports.export", "contacts.update", "users.view", "users.manage",
      "entitlements.request", "entitlements.approve"]),
    ("account_manager", "Account manager", "Gestor de cuentas",
     ["cards.view", "transactions.track", "entitlements.request", "contacts.update"]),
    ("read_only", "Read only", "Solo lectura",
     ["cards.view", "transactions.track", "reports.view"]),
]

# key, entitlement, title_en, title_es, url_path, position
HOME_SECTIONS: list[tuple[str, str, str, str, str, int]] = [
    ("cards", "cards.view", "Cards", "Tarjetas", "/cards", 10),
    ("cards-request", "cards.request", "Request a card", "Solicitar una tarjeta",
     "/cards/request", 20),
    ("cards-cancel", "cards.cancel", "Cancel a card", "Cancelar una tarjeta", "/cards/cancel", 30),
    ("tracking", "transactions.track", "Status tracking", "Seguimiento de estado", "/tracking", 40),
    ("reports", "reports.view", "Reports", "Informes", "/reports", 50),
    ("reports-export", "reports.export", "Export reports", "Exportar informes",
     "/reports/export", 60),
    ("users", "users.view", "Users", "Usuarios", "/users", 70),
    ("users-manage", "users.manage", "Manage users", "Administrar usuarios", "/users/manage", 80),
    ("access-request", "entitlements.request", "Request access", "Solicitar acceso",
     "/access-requests/new", 90),
    ("approvals", "entitlements.approve", "Approvals", "Aprobaciones", "/access-requests/review",
     100),
    ("profile", "contacts.update", "My contact details", "Mis datos de contacto", "/profile", 110),
]


def seed_catalog(session: Session) -> None:
    """Insert the catalog rows that are missing (never changes existing ones)."""
    known = set(session.scalars(select(Entitlement.key)))
    for key, en, es, category, scopable in ENTITLEMENTS:
        if key not in known:
            session.add(Entitlement(key=key, description_en=en, description_es=es,
                                    category=category, account_scopable=scopable,
                                    required_acr=REQUIRED_LEVELS.get(key)))
    session.flush()
    roles = set(session.scalars(select(Role.key)))
    for key, en, es, members in ROLES:
        if key in roles:
            continue
        session.add(Role(key=key, name_en=en, name_es=es))
        session.flush()
        session.add_all(RoleEntitlement(role_key=key, entitlement_key=m) for m in members)
    sections = set(session.scalars(select(HomeSection.key)))
    for key, entitlement, en, es, url, position in HOME_SECTIONS:
        if key not in sections:
            session.add(HomeSection(key=key, entitlement_key=entitlement, title_en=en,
                                    title_es=es, url_path=url, position=position))
    session.flush()
