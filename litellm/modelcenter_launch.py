"""Start a process that dies with the Model Center controller that spawned it.

Usage: python modelcenter_launch.py PROGRAM [ARGS...]

Linux's PR_SET_PDEATHSIG makes the kernel send SIGTERM to this process when its parent dies, even
by kill -9, and the setting survives exec. The launcher sets it, checks that its parent is still
the controller (it may have died before the setting took effect), then replaces itself with
PROGRAM (LiteLLM's CLI, nginx). LiteLLM (uvicorn) and nginx both stop on SIGTERM, so no orphan
keeps holding their port. MODELCENTER_PARENT_PID names the controller's pid.
"""

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def main() -> None:
    if len(sys.argv) < 2:
        sys.stderr.write("usage: modelcenter_launch.py PROGRAM [ARGS...]\n")
        sys.exit(64)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        sys.stderr.write(
            f"modelcenter_launch: prctl(PR_SET_PDEATHSIG) failed: {os.strerror(ctypes.get_errno())}\n"
        )
        sys.exit(70)
    parent = int(os.environ.pop("MODELCENTER_PARENT_PID", "0") or "0")
    if parent and os.getppid() != parent:
        sys.stderr.write("modelcenter_launch: the controller is gone; not starting\n")
        sys.exit(70)
    program = sys.argv[1]
    os.execv(program, [program, *sys.argv[2:]])


if __name__ == "__main__":
    main()
