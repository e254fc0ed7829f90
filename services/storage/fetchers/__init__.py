"""Fetchers: one per URI scheme, each in its own module, looked up by scheme in a registry."""

from modelplane.services.storage.fetchers.base import Fetcher, FetchTarget
from modelplane.services.storage.fetchers.registry import FetcherRegistry, default_registry

__all__ = ["FetchTarget", "Fetcher", "FetcherRegistry", "default_registry"]
