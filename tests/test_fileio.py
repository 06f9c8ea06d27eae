from __future__ import annotations

import os
import stat

import pandas as pd

from bench.fileio import write_csv, write_json, write_text


def test_written_file_follows_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        path = write_text(tmp_path / "report.html", "<html></html>")
    finally:
        os.umask(previous)

    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_no_temporary_file_left(tmp_path):
    write_json(tmp_path / "a.json", {"x": 1})
    write_csv(tmp_path / "b.csv", pd.DataFrame({"case_id": ["c1"]}))

    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.csv"]
