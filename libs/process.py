"""Helpers for the child processes modelplane starts (services under `up`, model-server runtimes)."""

from __future__ import annotations

import ctypes
import signal
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """``preexec_fn`` for a child: have the kernel send it SIGTERM when its parent dies.

    Children are started in their own session (so a terminal's Ctrl-C reaches only their
    supervisor, which stops them in order); without this, a supervisor killed outright would
    leave them orphaned. Linux only; elsewhere a no-op.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        except OSError:
            pass
