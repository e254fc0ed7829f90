"""Model server runtimes: how to start, probe and stop one, and how it wants model folders laid out."""

from modelplane.services.placement.runtimes.base import ModelLayout, Runtime, RuntimeEndpoints
from modelplane.services.placement.runtimes.factory import build_runtime

__all__ = ["ModelLayout", "Runtime", "RuntimeEndpoints", "build_runtime"]
