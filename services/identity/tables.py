"""Every table of identity, for Alembic and the CLI's "is the schema there?" check.

SQLAlchemy knows a table once its model module is imported; each flow declares its
tables in its own package, so the one place that needs them all names them here.
"""

from __future__ import annotations

from sqlalchemy import MetaData

from services.identity import models
from services.identity.enrollment import models as enrollment_models
from services.identity.factors import models as factors_models
from services.identity.factors import passkey_models
from services.identity.lifecycle import models as lifecycle_models
from services.identity.oidc import models as oidc_models

MODEL_MODULES = (models, enrollment_models, factors_models, passkey_models, lifecycle_models,
                 oidc_models)


def identity_metadata() -> MetaData:
    """The metadata holding every table of :data:`MODEL_MODULES`."""
    return models.Base.metadata
