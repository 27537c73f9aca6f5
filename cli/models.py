"""`streetaudit models list|download`: the checkpoints known to work, fetched before going offline."""

from __future__ import annotations

import typer
from rich.markup import escape

from streetaudit.cli.app import app, command_group, console, fail

models_app = command_group(
    "Segmentation checkpoints: the ones known to work (with their label sets), and fetching one "
    "into the Hugging Face cache for offline use."
)
app.add_typer(models_app, name="models")

CACHE_HELP = "Hugging Face cache folder (default: HF_HOME/hub, as `segment --cache-dir`)."


@models_app.command("list")
def models_list(
    cache_dir: str | None = typer.Option(None, "--cache-dir", help=CACHE_HELP),
) -> None:
    """The checkpoints known to work: name, backend, label set (classes), hub id, whether cached.

    Any Hugging Face segmentation checkpoint can be passed as `segment --model`; these map onto
    the six elements without help. `cached` is read from the cache folder only (no network).
    """
    from rich.table import Table

    from streetaudit.models.hub import cached_snapshot
    from streetaudit.models.label_sets import builtin
    from streetaudit.models.registry import CHECKPOINTS, DEFAULT_CHECKPOINT

    table = Table()
    # The name and hub id are what people copy: never cut. The notes go below a narrow table.
    for column in ("name", "backend", "label set", "classes", "model (hub id)", "cached"):
        table.add_column(column, no_wrap=True)
    notes_column = console.width >= 200
    if notes_column:
        table.add_column("note")
    for c in CHECKPOINTS:
        cached = "yes" if c.repo_id and cached_snapshot(c.repo_id, cache_dir) else "no"
        table.add_row(
            c.name + (" *" if c.name == DEFAULT_CHECKPOINT else ""),
            c.backend,
            c.label_set,
            str(len(builtin(c.label_set))),
            c.repo_id or "(your .pth file)",
            cached if c.repo_id else "–",
            *([c.note] if notes_column else []),
        )
    console.print(table)
    if not notes_column:
        for c in CHECKPOINTS:
            console.print(f"  {c.name}: {escape(c.note)}", highlight=False)
    console.print("* the default of `streetaudit segment`", highlight=False)


@models_app.command("download")
def models_download(
    name: str = typer.Argument(..., help="A name from `models list`, or any Hugging Face hub id."),
    cache_dir: str | None = typer.Option(None, "--cache-dir", help=CACHE_HELP),
    revision: str | None = typer.Option(None, "--revision", help="Branch, tag or commit (default: main)."),
) -> None:
    """Fetch a checkpoint's config and weights into the cache, so `segment --model` works offline.

    Exit status: 0 fetched (or already cached while offline); 2 unknown name or no network.
    """
    from streetaudit.models.backend import BackendError
    from streetaudit.models.hub import download
    from streetaudit.models.registry import BY_NAME, find

    listed = find(name)
    if listed is None and "/" not in name:
        fail(f"{name}: not a listed model ({', '.join(BY_NAME)}) nor a hub id (owner/name)", 2)
    if listed is not None and listed.repo_id is None:
        fail(f"{listed.name} has no public weights to download: {listed.note}", 2)
    repo_id = listed.repo_id if listed is not None and listed.repo_id else name
    try:
        folder = download(repo_id, cache_dir=cache_dir, revision=revision)
    except BackendError as error:
        fail(str(error), 2)
    console.print(f"{escape(repo_id)} is in {escape(str(folder))}", highlight=False, soft_wrap=True)
    console.print(f"use it with: streetaudit segment --model {escape(repo_id)}", highlight=False)
