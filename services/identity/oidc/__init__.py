"""The OpenID Connect provider: clients, keys, grants and endpoints (on authlib)."""
