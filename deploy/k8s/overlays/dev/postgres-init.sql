-- One database per service (DESIGN.md §2), created on the first start of an empty
-- PostgreSQL data directory (docker-entrypoint-initdb.d). Run as the superuser that
-- POSTGRES_USER names; each service's DATABASE_URL points at its own database.
-- Kept identical to deploy/k8s/overlays/dev/postgres-init.sql (tests/deploy checks it).
CREATE DATABASE identity;
CREATE DATABASE permissions;
CREATE DATABASE tracking;
CREATE DATABASE notifier;
