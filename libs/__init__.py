"""Code shared by every modelplane service. Never imports a service (import-linter enforces it)."""
