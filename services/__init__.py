"""modelplane services: one package per service, each with one composition root (app.py)."""
