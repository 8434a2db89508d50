"""The program-management home page: a registered OIDC client of Portico (docs/portal.md)."""
