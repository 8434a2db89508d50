"""The help-desk console (issue 27): an internal app that signs its users in through
Portico's OIDC and calls the services' public APIs with the signed-in person's own token."""
