"""Companies: one row per country and normalised tax id, made by the first enrollment
that names it. Identity-wide: enrollment creates them, the help desk and the lifecycle
read them, and permissions learns of them through enrollment's events."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .models import Company


def company_for(session: Session, name: str, country: str, tax_id: str, *,
                requires_review: bool) -> Company:
    """The company with this country and tax id, created on first enrollment (with
    ``name`` and ``requires_review``); concurrent first enrollments share one row."""
    found = session.scalar(select(Company).where(Company.country == country,
                                                 Company.tax_id_key == tax_id))
    if found:
        return found
    company = Company(name=name, country=country, tax_id_key=tax_id,
                      requires_review=requires_review)
    try:
        with session.begin_nested():
            session.add(company)
    except IntegrityError:  # another enrollment created it meanwhile
        company = session.scalars(select(Company).where(
            Company.country == country, Company.tax_id_key == tax_id)).one()
    return company
