"""The scopes identity's own APIs ask of a client token (its operator registers a client
with them)."""

ADMIN = "iam.admin"  # the clients admin API (/admin/v1/clients)
HELPDESK = "iam.helpdesk"  # the help desk's enrollment and lifecycle APIs
