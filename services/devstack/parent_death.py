"""`python -m devstack.parent_death PARENT_PID ARGS...`: `python ARGS...`, ended with its parent.

devstack starts each child through this wrapper. On Linux it asks the kernel
(`prctl(PR_SET_PDEATHSIG, SIGTERM)`) to send the process SIGTERM when its parent dies, then
`exec`s the real command in the same process, which keeps the setting. So even a devstack
ended by SIGKILL, which it cannot handle, leaves no registry or uvicorn behind holding ports.

Not covered: a command that ignores SIGTERM (ours all stop on it); a set-user-ID program (the
kernel clears the setting on exec); other systems than Linux, where this only `exec`s.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _ask_for_sigterm_when_parent_dies() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"prctl(PR_SET_PDEATHSIG): {os.strerror(error)}")


def main(argv: list[str]) -> None:
    """Set the parent-death signal, check the parent is still the expected one, exec the rest."""
    parent, args = int(argv[0]), argv[1:]
    # a SIGTERM ignored by whoever started devstack would make both stop paths futile
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform == "linux":
        _ask_for_sigterm_when_parent_dies()
    # the parent may have died between fork and prctl; then nobody would ever send the signal
    if os.getppid() != parent:
        sys.exit(f"devstack.parent_death: parent {parent} is gone; not starting {args}")
    os.execv(sys.executable, [sys.executable, *args])


if __name__ == "__main__":
    main(sys.argv[1:])
