"""The SQL examples of the README's analysts section, as the tests run them.

An example that returns nothing on the demo data teaches nothing (or looks broken), so the
tests run every statement of that section's ```sql blocks as the read-only role and
expect rows; the README stays the single copy of the examples.
"""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
SECTION = "## For analysts: SQL with the read-only role"
_FENCE = re.compile(r"```sql\n(.*?)```", re.S)


def analyst_examples(readme: Path = README) -> list[tuple[str, str]]:
    """(comment, statement) for each statement, the comment being the `--` line above it."""
    text = readme.read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start : end if end >= 0 else None]
    examples = []
    for block in _FENCE.findall(section):
        comment, statement = [], []
        for line in block.splitlines():
            if line.lstrip().startswith("--"):
                comment.append(line.strip("- "))
            elif line.strip():
                statement.append(line)
            if statement and line.rstrip().endswith(";"):  # a statement ends at a line's `;`
                text = "\n".join(statement).rstrip().removesuffix(";")
                examples.append((" ".join(comment) or statement[0], text))
                comment, statement = [], []
    return examples
