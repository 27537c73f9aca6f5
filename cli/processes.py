"""`--processes N`: run a stage as N local worker processes that share it through leases.

The copies are the same command line with `--processes 1`, so each is an ordinary worker (the
one a user would start by hand on another machine); this process only starts them, prefixes
their output with their number and exits with the worst status among them.
"""

from __future__ import annotations

import subprocess
import sys
import threading

import typer

from streetaudit.flows.errors import InputError

PROCESSES_HELP = (
    "Run as N local worker processes that share the stage through leases in the database "
    "(more machines: start the same command on each)."
)


def processes_option() -> int:
    return typer.Option(1, "--processes", min=1, max=256, help=PROCESSES_HELP)


def _without_processes(argv: list[str]) -> list[str]:
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--processes":
            skip = True
        elif not arg.startswith("--processes="):
            kept.append(arg)
    return kept


def _forward(index: int, stream) -> None:
    for line in stream:
        sys.stdout.write(f"[{index}] {line}")
        sys.stdout.flush()


def run_copies(n: int) -> None:
    """Start n copies of this command line as workers and wait for all of them."""
    if n < 1:
        raise InputError(f"--processes must be at least 1, got {n}")
    argv = [*_without_processes(sys.argv[1:]), "--processes", "1", "--no-progress"]
    command = [sys.executable, "-m", "streetaudit.cli.main", *argv]
    workers = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(n)
    ]
    readers = [
        threading.Thread(target=_forward, args=(i + 1, w.stdout), daemon=True) for i, w in enumerate(workers)
    ]
    for reader in readers:
        reader.start()
    try:
        codes = [w.wait() for w in workers]
    except KeyboardInterrupt:
        for w in workers:
            w.terminate()
        raise
    for reader in readers:
        reader.join()
    worst = max(codes)
    if worst:
        raise typer.Exit(worst)
