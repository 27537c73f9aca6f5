"""Commands of the rating campaign: `raters add|list|revoke`, `ratings campaign|recompute|status|top`,
and `run ratings`."""

from __future__ import annotations

from pathlib import Path

import typer

from streetaudit.cli.app import app, command_group, console, quiet_prefect, ready_url, run_app

raters_app = command_group("People who rate image pairs on the /rate page: add, list, revoke.")
ratings_app = command_group(
    "Pairwise ratings of historic character: campaign settings, scores, status, top-N."
)
app.add_typer(raters_app, name="raters")
app.add_typer(ratings_app, name="ratings")


@raters_app.command("add")
def raters_add(
    name: str = typer.Argument(..., help="The rater's name (unique)."),
    base_url: str = typer.Option("http://127.0.0.1:8000", help="Where `streetaudit serve` is reachable."),
) -> None:
    """Add a rater and print their personal link (shown only this once; only a hash is stored)."""
    from streetaudit.flows.raters import add_rater

    rater = add_rater(ready_url(), name, base_url)
    console.print(f"rater {rater.name} added; their personal link (shown only now):")
    print(rater.link)
    console.print("the same link with /label instead of /rate opens their box-drawing page")


@raters_app.command("list")
def raters_list() -> None:
    """Raters, whether their link works, and how many pairs they judged."""
    from streetaudit.flows.raters import list_raters

    for r in list_raters(ready_url()):
        state = "active" if r.active else f"revoked {r.revoked_at:%Y-%m-%d %H:%M}"
        console.print(
            f"{r.name}\t{state}\t{r.comparisons} choices, {r.skipped} skipped\tadded {r.created_at:%Y-%m-%d}",
            highlight=False,
            soft_wrap=True,
        )


@raters_app.command("revoke")
def raters_revoke(name: str = typer.Argument(..., help="The rater's name.")) -> None:
    """Stop a rater's link from working (their choices stay in the record)."""
    from streetaudit.flows.raters import revoke_rater

    revoke_rater(ready_url(), name)
    console.print(f"rater {name} revoked")


@ratings_app.command("campaign")
def ratings_campaign(
    strategy: str = typer.Option(None, help="adaptive (default) or random pairs."),
    where_area: str = typer.Option(
        None, help="Pool: images inside this heritage area (default: all core areas)."
    ),
    all_cores: bool = typer.Option(False, "--all-cores", help="Pool: images inside every core area again."),
    target: int = typer.Option(None, help="Comparisons each rater is asked for."),
    k: float = typer.Option(None, help="ELO K factor (default 32)."),
    repeat_share: float = typer.Option(
        None, help="Share of pairs repeated from another rater, for agreement (default 0.05)."
    ),
    question: str = typer.Option(None, help="The question shown above the pair."),
) -> None:
    """Set the campaign (only the options given change) and refresh its image pool."""
    from streetaudit.flows.ratings import set_campaign

    c = set_campaign(
        ready_url(),
        strategy=strategy,
        area=where_area,
        all_cores=all_cores,
        target=target,
        k=k,
        repeat_share=repeat_share,
        question=question,
    )
    console.print(
        f"campaign: {c.strategy} pairs from {c.pool} images in {c.area or 'all core areas'}; "
        f"target {c.target} comparisons per rater; K {c.k:g}; repeated pairs {c.repeat_share:.0%}",
        highlight=False,
        soft_wrap=True,
    )
    console.print(f"question: {c.question}", highlight=False, soft_wrap=True)


@ratings_app.command("recompute")
def ratings_recompute() -> None:
    """ELO (answer order) and Bradley–Terry, pooled and per rater, from the record of choices."""
    from streetaudit.flows.ratings import recompute_ratings

    r = recompute_ratings(ready_url())
    console.print(
        f"ratings from {r.comparisons} comparisons of {r.images} images by {r.raters} raters (K {r.k:g}); "
        f"online ELO differed by at most {r.elo_drift:.3g}; data version {r.version} ({r.seconds:.2f} s)",
        highlight=False,
        soft_wrap=True,
    )


@ratings_app.command("status")
def ratings_status(
    lag: int = typer.Option(None, help="Compare with the ranking this many choices ago (default 10 %)."),
    seed: int = typer.Option(0, help="Seed of the random split halves."),
) -> None:
    """Comparisons, per-rater counts, split-half reliability, stability and agreement."""
    from streetaudit.flows.errors import InputError
    from streetaudit.flows.ratings import rating_status, status_lines

    if lag is not None and lag <= 0:
        raise InputError(f"--lag must be a positive number of choices, got {lag}")
    for line in status_lines(rating_status(ready_url(), lag=lag, seed=seed)):
        console.print(line, highlight=False, soft_wrap=True)


@ratings_app.command("top")
def ratings_top(
    out: Path = typer.Option(..., help="New or empty folder for the images and manifest.csv."),
    n: int = typer.Option(500, "--n", help="Images per list."),
    per_rater: bool = typer.Option(False, "--per-rater", help="One list (sub-folder) per rater."),
    method: str = typer.Option("elo", help="elo or bt."),
) -> None:
    """Copy the top-N images (pooled, or per rater) and write manifest.csv for a labelling tool."""
    from streetaudit.flows.rating_export import export_top

    report = export_top(ready_url(), out, n=n, method=method, per_rater=per_rater)
    for name, count in report.lists.items():
        console.print(f"{name or 'pooled'}: {count} images", highlight=False, soft_wrap=True)
    console.print(
        f"{report.files} files, {report.union} distinct images; manifest {report.manifest}", highlight=False
    )


@run_app.command("ratings")
def run_ratings() -> None:
    """Recompute the ratings and the status as the Prefect flow `ratings` (schedule it during a campaign)."""
    quiet_prefect()
    from streetaudit.flows.ratings import ratings_flow

    ratings_flow(ready_url())
