"""The `streetaudit` command line (console script `streetaudit = streetaudit.flows.cli:app`).

The application and its groups are in cli_app; importing the cli_* modules below adds
each stage's commands to it.
"""

from __future__ import annotations

from streetaudit.flows import (  # noqa: F401  (register commands)
    cli_data,
    cli_images,
    cli_ratings,
    cli_segment,
    cli_stats,
)
from streetaudit.flows.cli_app import app


def main() -> None:
    app(prog_name="streetaudit")


if __name__ == "__main__":
    main()
