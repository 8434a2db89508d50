"""Sample internal apps that use Portico the way any other app would (public APIs only)."""
