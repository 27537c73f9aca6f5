"""Stage 6: statistics per road and heritage area, and the core-vs-rest comparison.

SQL computes the descriptive statistics (tables in schema `api`, each filled from its
definition view, in full or for the changed points only: sql/post/030_stats.sql); the tests the SQL cannot do (Welch's t, Mann–Whitney U, Holm, and the
street-level permutation and cluster-robust tests of flows/street_inference.py) are
computed here and stored in the same transaction as the refresh, so readers never see
views of one selection next to tests of another.

A selection is one (provider, model) pair: views of different providers at one point are
never averaged together (a Baidu photo and a synthetic drawing are not two looks at one
street). With complete_only a point counts only when every view recorded for it is usable.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg
from prefect import flow
from scipy import stats as scistats

from streetaudit.flows import street_inference
from streetaudit.flows.comparison_tables import cell, core_rest_table
from streetaudit.flows.errors import InputError
from streetaudit.flows.permutation_draws import KeptDraws
from streetaudit.models.label_sets import ELEMENTS
from streetaudit.sql.rows import one, scalar

ALL_CORES = "all core areas"
# The unit of the street-level tests: each point's street (`streets build`,
# streetaudit.point_street) once streets are built; before that, and for a point on a road
# added since the build, its road (negated, so road and street ids never meet).
CLUSTER_SQL = "coalesce(ps.street_id, -pe.road_id)"
HOLM_FAMILIES = ("elements", "all")


@dataclass
class StatsReport:
    model_id: int
    model_name: str
    version: int
    points: int
    roads: int
    areas: int
    comparisons: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    provider: str | None = None
    provider_by_default: bool = False
    complete_only: bool = False
    incomplete_points: int = 0
    areas_without_roads: list[str] = field(default_factory=list)
    areas_without_data: list[str] = field(default_factory=list)
    # "full" (everything recomputed), "incremental" (only what the changed points reach:
    # their rows, roads, streets, overview cells and tiles; the area statistics and the
    # comparison whole) or "unchanged" (nothing to do: what is published already comes from
    # this selection and these inputs); reason: why it recomputed.
    mode: str = "full"
    reason: str | None = None
    comparison_seconds: float = (
        0.0  # of `seconds`: the scipy comparison (whole city, every refresh that recomputes)
    )
    recomputed_points: int = 0  # incremental: the changed points; full: every published point


def resolve_model(conn: psycopg.Connection, model: str | int | None) -> tuple[int, str]:
    """The segmentation model to publish: given by id or name, else the most recent one."""
    if model is None:
        row = conn.execute(
            """SELECT id, name FROM streetaudit.model WHERE task = 'segmentation'
               ORDER BY created_at DESC, id DESC LIMIT 1"""
        ).fetchone()
        if row is None:
            raise InputError("no segmentation model in the database; run `streetaudit segment` first")
        return row
    text = str(model).strip()
    if text.isdigit():
        row = conn.execute(
            "SELECT id, name FROM streetaudit.model WHERE task = 'segmentation' AND id = %s", (int(text),)
        ).fetchone()
    else:
        rows = conn.execute(
            """SELECT id, name FROM streetaudit.model WHERE task = 'segmentation' AND name = %s
               ORDER BY created_at DESC, id DESC""",
            (text,),
        ).fetchall()
        row = rows[0] if rows else None
    if row is None:
        known = scalar(
            conn.execute(
                "SELECT string_agg(id || ' (' || name || ')', ', ' ORDER BY id) FROM streetaudit.model "
                "WHERE task = 'segmentation'"
            )
        )
        raise InputError(f"--model {model!r}: no such segmentation model (known: {known or 'none'})")
    return row


def holm(pvalues: list[float | None]) -> list[float | None]:
    """Holm's step-down adjustment; None (a test that could not run) is left out and kept None."""
    present = [(p, i) for i, p in enumerate(pvalues) if p is not None]
    m = len(present)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(present)):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def compare(core: np.ndarray, rest: np.ndarray) -> dict[str, float | None]:
    """Core vs rest for one element; statistics that need more data than there is are None."""
    n1, n2 = len(core), len(rest)
    out: dict[str, float | None] = {
        "n_core": n1,
        "n_rest": n2,
        "mean_core": _finite(core.mean()) if n1 else None,
        "mean_rest": _finite(rest.mean()) if n2 else None,
    }
    mean_core, mean_rest = out["mean_core"], out["mean_rest"]
    out["mean_diff"] = mean_core - mean_rest if mean_core is not None and mean_rest is not None else None
    out.update(
        cohens_d=None, welch_t=None, welch_df=None, welch_p=None, mannwhitney_u=None, mannwhitney_p=None
    )
    if n1 >= 1 and n2 >= 1 and n1 + n2 >= 3:
        # The pooled sd takes its n1 + n2 - 2 degrees of freedom from whichever group has
        # them: a group of one point adds its deviation from itself (0) and no df, so d is
        # defined for one point against many; NULL only when both groups are single points
        # or every value is equal (pooled sd 0).
        squares = ((core - core.mean()) ** 2).sum() + ((rest - rest.mean()) ** 2).sum()
        pooled = math.sqrt(squares / (n1 + n2 - 2))
        out["cohens_d"] = _finite((core.mean() - rest.mean()) / pooled) if pooled > 0 else None
    if n1 >= 2 and n2 >= 2:
        welch = scistats.ttest_ind(core, rest, equal_var=False)
        out["welch_t"], out["welch_df"], out["welch_p"] = (
            _finite(welch.statistic),
            _finite(welch.df),
            _finite(welch.pvalue),
        )
    if n1 >= 1 and n2 >= 1:
        mw = scistats.mannwhitneyu(core, rest, alternative="two-sided")
        out["mannwhitney_u"], out["mannwhitney_p"] = _finite(mw.statistic), _finite(mw.pvalue)
    return out


def comparisons(
    conn: psycopg.Connection,
    *,
    holm_family: str = "elements",
    permutations: int = street_inference.PERMUTATIONS,
) -> list[dict]:
    """Each core area, and all cores together, against the rest of the city, per element.

    Beside the point-level tests, the street-level ones (flows/street_inference.py), with
    streets (CLUSTER_SQL) as units. Holm adjusts over the six elements of each
    comparison, or with holm_family "all" over every area × element at once (they share
    one rest group, so they are one family of tests on the same data).
    """
    k = len(ELEMENTS)
    cols = ", ".join(f"pe.{e}" for e in ELEMENTS)
    table = _stream_array(
        conn,
        f"""SELECT {cols}, pe.n_images, {CLUSTER_SQL}, pe.point_id
            FROM api.point_elements AS pe
            LEFT JOIN streetaudit.point_street AS ps ON ps.point_id = pe.point_id
            ORDER BY pe.point_id""",
        k + 3,
    )
    values = table[:, :k]
    images, clusters, point_ids = (table[:, j].astype(np.int64) for j in (k, k + 1, k + 2))
    cores = _stream_array(
        conn,
        """SELECT pa.point_id, pa.area_id FROM streetaudit.point_area AS pa
           JOIN api.point_elements AS pe ON pe.point_id = pa.point_id
           WHERE pa.kind = 'core'""",
        2,
    ).astype(np.int64)
    streets_built = scalar(conn.execute("SELECT EXISTS (SELECT 1 FROM streetaudit.street)"))
    cluster_unit = "street" if streets_built else "road"
    areas = conn.execute(
        "SELECT id, name FROM streetaudit.heritage_area WHERE kind = 'core' ORDER BY id"
    ).fetchall()
    in_any = np.isin(point_ids, cores[:, 0])
    groups = [(None, ALL_CORES, in_any)] + [
        (area_id, name, np.isin(point_ids, cores[cores[:, 1] == area_id, 0])) for area_id, name in areas
    ]
    results = []
    draws = KeptDraws(conn)
    for area_id, name, mask in groups:
        tests: list[dict[str, Any]] = [compare(values[mask, j], values[~in_any, j]) for j in range(k)]
        chosen = mask | ~in_any  # this area's points and the rest; other cores are left out
        side = mask[chosen]
        permuted = street_inference.permutation_test(
            values[chosen], side, clusters[chosen], permutations=permutations, seed=0, draw=draws
        )
        robusts = street_inference.cluster_robust_columns(values[chosen], side, clusters[chosen])
        for j, (test, robust) in enumerate(zip(tests, robusts, strict=True)):
            test.update(
                n_images_core=int(images[mask].sum()),
                n_images_rest=int(images[~in_any].sum()),
                cluster_unit=cluster_unit,
                n_clusters_core=permuted["n_clusters_core"],
                n_clusters_rest=permuted["n_clusters_rest"],
                n_permutations=permuted["n_permutations"],
                permutation_p=permuted["p"][j],
                cluster_diff=robust["diff"],
                cluster_se=robust["se"],
                cluster_ci_low=robust["ci_low"],
                cluster_ci_high=robust["ci_high"],
                cluster_p=robust["p"],
                holm_family=holm_family,
            )
        results += [
            {"area_id": area_id, "area_name": name, "element": element, **test}
            for element, test in zip(ELEMENTS, tests, strict=True)
        ]
    draws.forget_others()
    families = [results] if holm_family == "all" else [results[i : i + k] for i in range(0, len(results), k)]
    for family in families:
        for key in ("welch_p", "mannwhitney_p", "permutation_p", "cluster_p"):
            for test, adjusted in zip(family, holm([t[key] for t in family]), strict=True):
                test[f"{key}_holm"] = adjusted
    return results


def _stream_array(conn: psycopg.Connection, query: str, width: int) -> np.ndarray:
    """A query's numeric rows as one float array, read in chunks through a server-side cursor:
    a city's millions of points never sit in memory as Python rows (NULL becomes NaN;
    ids stay exact below 2**53)."""
    chunks = []
    with conn.cursor(name="stats_comparison") as cur:
        cur.execute(query)
        while batch := cur.fetchmany(STREAM_ROWS):
            chunks.append(np.array(batch, dtype=np.float64).reshape(-1, width))
    return np.vstack(chunks) if chunks else np.empty((0, width))


STREAM_ROWS = 50_000


_COMPARISON_COLUMNS = (
    "area_id, area_name, element, n_core, n_rest, mean_core, mean_rest, mean_diff, cohens_d, welch_t, "
    "welch_df, welch_p, welch_p_holm, mannwhitney_u, mannwhitney_p, mannwhitney_p_holm, "
    "n_images_core, n_images_rest, holm_family, cluster_unit, n_clusters_core, n_clusters_rest, "
    "n_permutations, permutation_p, permutation_p_holm, cluster_diff, cluster_se, cluster_ci_low, "
    "cluster_ci_high, cluster_p, cluster_p_holm"
)


def resolve_provider(
    conn: psycopg.Connection, provider: str | None, model_id: int
) -> tuple[str | None, bool]:
    """The provider whose images the statistics use, and whether it was chosen by default.

    By default the provider with the most ok images that the model segmented (then with the
    most ok images at all); None only when there are no images.
    """
    counts = conn.execute(
        """SELECT i.provider, count(*) FILTER (WHERE i.status = 'ok'),
                  count(s.image_id) FILTER (WHERE i.status = 'ok')
           FROM streetaudit.image AS i
           LEFT JOIN streetaudit.segmentation AS s
             ON s.image_id = i.id AND s.model_id = %s AND s.error IS NULL
           GROUP BY i.provider
           ORDER BY 3 DESC, 2 DESC, 1""",
        (model_id,),
    ).fetchall()
    if provider is None:
        return (counts[0][0] if counts else None), True
    if provider not in {c[0] for c in counts}:
        known = ", ".join(f"{c[0]} ({c[1]} ok)" for c in counts) or "none"
        raise InputError(f"--provider {provider!r}: no images of that provider (known: {known})")
    return provider, False


def refresh_stats(
    url: str,
    *,
    model: str | int | None = None,
    provider: str | None = None,
    complete_only: bool = False,
    holm: str = "elements",
    permutations: int = street_inference.PERMUTATIONS,
    full: bool = False,
) -> StatsReport:
    """Recompute every published statistic from one (provider, model) selection and bump the data version.

    When what is published already comes from this selection and these comparison
    parameters, and no table the statistics read was written since the last refresh
    (streetaudit.stats_refresh_reason), nothing is recomputed and the version stays:
    the report's mode is "unchanged". When only points' images or segmentations changed
    (or points were retired), the SQL recomputes just what those points reach (mode
    "incremental", which publishes exactly what a full refresh would); anything else
    recomputes everything. `full` recomputes everything regardless.
    """
    if holm not in HOLM_FAMILIES:
        raise InputError(f"--holm must be one of {', '.join(HOLM_FAMILIES)}, got {holm!r}")
    if not 99 <= permutations <= 100_000:
        raise InputError(f"--permutations must be 99 to 100000, got {permutations}")
    start = time.perf_counter()
    with psycopg.connect(url) as conn:
        model_id, model_name = resolve_model(conn, model)
        chosen, by_default = resolve_provider(conn, provider, model_id)
        reason = (
            "--full"
            if full
            else scalar(
                conn.execute(
                    "SELECT streetaudit.stats_refresh_reason(%s, %s, %s, %s, %s)",
                    (model_id, chosen, complete_only, holm, permutations),
                )
            )
        )
        comparison_seconds, mode, recomputed = 0.0, "unchanged", 0
        if reason is None:
            version = scalar(conn.execute("SELECT version FROM streetaudit.stats_state"))
            with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
                results = cur.execute("SELECT * FROM api.area_comparison").fetchall()
        else:
            # Only a change of inputs may be published in part; the SQL decides from the
            # change log it clears (a road changed since this reason was read makes it full).
            incremental = reason.startswith("inputs changed")
            version, mode, recomputed, results, comparison_seconds = _recompute(
                conn, model_id, chosen, complete_only, holm, permutations, incremental
            )
        counts = _counts(conn, complete_only)
        conn.commit()
    return StatsReport(
        model_id,
        model_name,
        version,
        comparisons=results,
        seconds=time.perf_counter() - start,
        provider=chosen,
        provider_by_default=by_default,
        complete_only=complete_only,
        **counts,
        mode=mode,
        reason=reason,
        comparison_seconds=comparison_seconds,
        recomputed_points=recomputed,
    )


def _recompute(
    conn: psycopg.Connection,
    model_id: int,
    provider: str | None,
    complete_only: bool,
    holm: str,
    permutations: int,
    incremental: bool,
) -> tuple[int, str, int, list[dict], float]:
    """The refresh: the published tables (SQL: all of them, or with `incremental` what the
    changed points reach), then the comparison (scipy, always over the whole city), in the
    caller's transaction. Returns the version, mode, points recomputed, comparison and the
    comparison's seconds."""
    conn.execute(
        "UPDATE streetaudit.stats_state SET provider = %s, complete_only = %s, holm_family = %s, permutations = %s",
        (provider, complete_only, holm, permutations),
    )
    version, mode, recomputed = one(
        conn.execute("SELECT * FROM streetaudit.refresh_stats(%s, %s)", (model_id, incremental))
    )
    start = time.perf_counter()
    results = comparisons(conn, holm_family=holm, permutations=permutations)
    seconds = time.perf_counter() - start
    conn.execute("DELETE FROM streetaudit.area_comparison_result")
    names = _COMPARISON_COLUMNS.split(", ")
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO streetaudit.area_comparison_result ({_COMPARISON_COLUMNS}, model_id, provider, "
            f"complete_only) VALUES ({', '.join(['%s'] * len(names))}, %s, %s, %s)",
            [[r[n] for n in names] + [model_id, provider, complete_only] for r in results],
        )
    return version, mode, recomputed, results, seconds


def _counts(conn: psycopg.Connection, complete_only: bool) -> dict[str, Any]:
    """What the report says of the published statistics (StatsReport's fields): points,
    roads and areas with data, incomplete points, and the areas without roads or data."""
    points, roads, areas = one(
        conn.execute(
            """SELECT (SELECT count(*) FROM api.point_elements),
                  (SELECT count(*) FROM api.road_stats WHERE n_points > 0),
                  (SELECT count(*) FROM api.area_stats WHERE area_id IS NOT NULL)"""
        )
    )
    # Published points with a view missing (n_images < n_views); with complete_only those
    # are left out of api.point_elements, so they are counted from streetaudit.point_views,
    # which aggregates every image (seconds at a city's scale).
    incomplete = scalar(
        conn.execute(
            "SELECT count(*) FROM streetaudit.point_views WHERE n_images > 0 AND NOT complete"
            if complete_only
            else "SELECT count(*) FROM api.point_elements WHERE n_images < n_views"
        )
    )
    without_roads, without_data = _empty_areas(conn)
    return {
        "points": points,
        "roads": roads,
        "areas": areas,
        "incomplete_points": incomplete,
        "areas_without_roads": without_roads,
        "areas_without_data": without_data,
    }


def summary_line(report: StatsReport) -> str:
    """What `stats refresh` and the pipeline's stats stage print above the core-vs-rest table."""
    return (
        f"stats from model {report.model_id} ({report.model_name}), provider {report.provider or 'none'}: "
        f"{report.points} points with data, "
        f"{report.roads} roads, {report.areas} heritage areas; data version {report.version} "
        f"({report.seconds:.2f} s); "
        + {
            "unchanged": "unchanged since the last refresh: nothing recomputed",
            "incremental": f"incremental refresh: {report.recomputed_points} changed points recomputed",
        }.get(report.mode, "full refresh")
    )


def mode_line(report: StatsReport) -> str | None:
    """Why the refresh recomputed (None when it had nothing to do)."""
    return None if report.reason is None else f"{report.mode} refresh because: {report.reason}"


def _empty_areas(conn: psycopg.Connection) -> tuple[list[str], list[str]]:
    """Heritage areas no road passes under, and those with no point of data: both vanish from
    the comparison and the plots, so the report names them rather than dropping them silently."""
    without_roads = [
        r[0]
        for r in conn.execute(
            """SELECT a.name FROM streetaudit.heritage_area AS a
               WHERE NOT EXISTS (SELECT 1 FROM streetaudit.road AS r
                                 WHERE ST_Intersects(r.geom, a.geom))
               ORDER BY a.id"""
        )
    ]
    without_data = [
        r[0]
        for r in conn.execute(
            "SELECT area_name FROM api.area_stats WHERE area_id IS NOT NULL AND n_points = 0 ORDER BY area_id"
        )
        if r[0] not in without_roads
    ]
    return without_roads, without_data


def read_area_stats(url: str) -> list[dict]:
    with psycopg.connect(url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute("SELECT * FROM api.area_stats ORDER BY area_id NULLS LAST").fetchall()


def read_comparison(url: str) -> list[dict]:
    with psycopg.connect(url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute("SELECT * FROM api.area_comparison").fetchall()


def refresh_notes(report: StatsReport) -> list[str]:
    """What the counts alone do not say: the selection used, and areas or points left out."""
    how = "the provider with the most ok images" if report.provider_by_default else "--provider"
    notes = [f"images of provider {report.provider or 'none'} only ({how})"]
    if report.incomplete_points:
        verb = "left out (--complete-only)" if report.complete_only else "averaged over fewer views"
        notes.append(
            f"{report.incomplete_points} points have a view missing, failed, excluded or not segmented: {verb}"
        )
    if report.areas_without_roads:
        notes.append(
            "heritage areas with no road under them (no points, not compared): "
            + ", ".join(report.areas_without_roads)
        )
    if report.areas_without_data:
        notes.append("heritage areas with no point of data: " + ", ".join(report.areas_without_data))
    return notes


def _holm_family(chosen: list[dict]) -> str:
    return "every area x element" if chosen and chosen[0].get("holm_family") == "all" else "the six elements"


def comparison_table(rows: list[dict], *, area_id: int | None = None):
    """A rich table of one comparison (default: all cores together vs the rest), point level."""
    chosen = [r for r in rows if r["area_id"] == area_id]
    title = chosen[0]["area_name"] if chosen else "no comparison"
    return core_rest_table(
        chosen,
        key="element",
        title=f"{title} vs rest of the city (point level)",
        caption=f"d: Cohen's d; p: Welch t / Mann–Whitney U, Holm-adjusted over {_holm_family(chosen)}; "
        "points as independent, which they are not (see the street-level table)",
    )


def street_table(rows: list[dict], *, area_id: int | None = None):
    """The street-level tests of one comparison: the ones to report (README, Statistics)."""
    from rich import box
    from rich.table import Table

    f = cell
    chosen = [r for r in rows if r["area_id"] == area_id]
    title = chosen[0]["area_name"] if chosen else "no comparison"
    unit = (chosen[0].get("cluster_unit") if chosen else None) or "street"
    table = Table(
        title=f"{title} vs rest of the city (street level: {unit}s as units)",
        caption=f"perm p: whole {unit}s reassigned between core and rest; CR: OLS with errors clustered "
        f"by {unit} (estimate, 95% CI, p); p Holm-adjusted over {_holm_family(chosen)}",
        title_justify="left",
        box=box.SIMPLE,
    )
    for column in ("element", f"{unit}s core/rest", "diff", "CR 95% CI", "CR p", "perm p"):
        table.add_column(column, justify="left" if column == "element" else "right")
    for r in chosen:
        low, high = r.get("cluster_ci_low"), r.get("cluster_ci_high")
        table.add_row(
            r["element"],
            f"{r.get('n_clusters_core')}/{r.get('n_clusters_rest')}",
            f(r.get("cluster_diff"), "+.3f"),
            "–" if low is None else f"{low:+.3f} to {high:+.3f}",
            f(r.get("cluster_p_holm"), ".2g"),
            f(r.get("permutation_p_holm"), ".2g"),
        )
    return table


# The Prefect flow `stats`: the plain function, its parameters validated by Prefect.
stats_flow = flow(name="stats", log_prints=True)(refresh_stats)
