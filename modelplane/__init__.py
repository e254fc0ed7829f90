"""modelplane: an event-driven control plane for serving ML models.

``modelplane.services`` and ``modelplane.libs`` are the repository's top-level ``services/`` and
``libs/`` folders; this package adds the CLI (``modelplane.cli``) and the local supervisor
(``modelplane.up``).
"""

__version__ = "0.1.0"
