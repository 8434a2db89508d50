"""A single-use secret kind of the tests' own, to try services/common/single_use.py on a
real database apart from any use case: a pass held by a holder."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.db import Database, new_metadata
from services.common.single_use import SingleUseMixin


class Base(DeclarativeBase):
    metadata = new_metadata()


class Pass(SingleUseMixin, Base):
    __tablename__ = "passes"
    subject_key = "holder"

    holder: Mapped[str] = mapped_column(String(36), index=True)


@contextlib.contextmanager
def passes_database(database_url: Callable[[str], str], *,
                    pool_size: int = 5) -> Iterator[Database]:
    """A fresh database holding the ``passes`` table."""
    db = Database(database_url("single_use"), pool_size=pool_size)
    try:
        Base.metadata.create_all(db.engine)
        yield db
    finally:
        db.dispose()
