"""Detectors as model rows: `--model` by name, id or file, and one row per file."""

from __future__ import annotations

import psycopg
import pytest

from streetaudit.flows.detector_registry import register_detector, resolve_detector
from streetaudit.flows.errors import InputError
from streetaudit.models.detectors import build_detector, save_detector


def test_a_detector_is_found_by_name_id_or_file(fresh_db_url, tmp_path):
    detector = build_detector("fasterrcnn_tiny", ["window"])
    path = save_detector(tmp_path / "tiny.pt", detector)
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        with pytest.raises(InputError, match="train one with"):
            resolve_detector(conn, "nothing")
        model_id = register_detector(conn, "first", path, detector, {"epochs": 2})
        assert register_detector(conn, "renamed", path, detector) == model_id
        assert resolve_detector(conn, "renamed") == (model_id, str(path.resolve()))
        assert resolve_detector(conn, str(model_id))[0] == model_id
        assert resolve_detector(conn, str(path))[0] == model_id
        other = save_detector(tmp_path / "other.pt", build_detector("fasterrcnn_tiny", ["roof"]))
        other_id, _ = resolve_detector(conn, str(other))  # a file is registered on first use
        row = conn.execute(
            "SELECT task, name, label_set, labels FROM streetaudit.model WHERE id = %s", (other_id,)
        ).fetchone()
        assert row == ("detection", "other", "fasterrcnn_tiny", ["roof"])
        with pytest.raises(InputError, match="known detectors: renamed"):
            resolve_detector(conn, "missing")
        with pytest.raises(InputError, match="with labels"):
            register_detector(conn, "x", path, build_detector("fasterrcnn_tiny", ["door"]))
