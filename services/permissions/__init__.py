"""The permissions service."""
