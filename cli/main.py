"""The `streetaudit` command line (console script `streetaudit = streetaudit.cli.main:app`).

The application and its groups are in `cli.app`; importing the command modules below adds
each stage's commands to it.
"""

from __future__ import annotations

from streetaudit.cli import annotations as annotations_commands  # noqa: F401  (not `annotations`: the __future__ name)
from streetaudit.cli import (  # noqa: F401  (register commands)
    data,
    detect,
    detect_predict,
    detect_split,
    explain,
    images,
    models,
    ratings,
    segment,
    stats,
    streets,
)
from streetaudit.cli.app import app


def main() -> None:
    app(prog_name="streetaudit")


if __name__ == "__main__":
    main()
