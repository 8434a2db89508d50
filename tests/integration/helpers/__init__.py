"""Plain helpers (no fixtures, no tests) shared by the integration tests of one area."""
