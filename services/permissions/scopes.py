"""The scopes permissions' API asks of a client token (identity's operator registers a
client with them)."""

CHECK = "permissions.check"  # may ask for allow/deny decisions
READ = "permissions.read"  # also reads any user's entitlements (a trusted service)
ADMIN = "permissions.admin"  # also acts as the help desk and its supervisor
