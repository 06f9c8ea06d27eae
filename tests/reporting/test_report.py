"""`bench report` on a real tiny run: sections, figures, tables, bad input and rendering."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from bench.cli import main
from bench.evaluation import stats
from bench.reporting.gallery import select_gallery_cases
from bench.reporting.render import write_report
from bench.reporting.tables import format_p

SECTIONS = (
    "header",
    "status",
    "tasks",
    "dice",
    "burden-correlation",
    "bland-altman",
    "wilcoxon",
    "hardest",
    "breakdowns",
    "training",
    "gallery",
    "methods",
)
FIGURES = ("figure-dice", "figure-scatter", "figure-bland-altman", "figure-training")
MODELS = ("attention_unet-small", "unet-small")
CHROMIUM = Path("/usr/bin/chromium")


class _ReportParser(HTMLParser):
    """Collects section ids, figure ids, image sources and tags that would load anything."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.figures: list[str] = []
        self.images: list[str] = []
        self.loading_tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "section":
            self.sections.append(attributes.get("id") or "")
        if tag == "figure":
            self.figures.append(attributes.get("id") or "")
        if tag == "img":
            self.images.append(attributes.get("src") or "")
        if tag in ("script", "link", "iframe", "object", "embed"):
            self.loading_tags.append(tag)


@pytest.fixture(scope="module")
def report(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("report") / "tiny.html"
    write_report([tiny_run], output)
    return output


def _parse(path: Path) -> _ReportParser:
    parser = _ReportParser()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    return parser


def _per_case(run_folder: Path) -> pd.DataFrame:
    frames = [
        pd.read_csv(path, dtype={"case_id": str})
        for path in sorted(run_folder.glob("*/per_case.csv"))
    ]
    return pd.concat(frames, ignore_index=True)


def test_report_has_every_section(report: Path):
    parser = _parse(report)

    assert parser.sections == list(SECTIONS)


def test_report_has_every_figure(report: Path):
    parser = _parse(report)

    for figure_id in FIGURES:
        assert figure_id in parser.figures
    gallery = [figure for figure in parser.figures if figure.startswith("figure-gallery-")]
    assert len(gallery) == len(MODELS)
    assert len(parser.images) == len(FIGURES) + len(MODELS)
    for source in parser.images:
        assert source.startswith("data:image/png;base64,")


def test_report_is_self_contained(report: Path):
    html = report.read_text(encoding="utf-8")
    parser = _parse(report)

    assert "http" not in html.lower()
    assert parser.loading_tags == []
    assert "url(" not in html
    assert "@import" not in html


def test_report_lists_tasks_and_models(report: Path, tiny_run: Path):
    html = report.read_text(encoding="utf-8")
    task_ids = sorted(path.parent.name for path in tiny_run.glob("*/DONE"))

    assert len(task_ids) == 4
    for task_id in task_ids:
        assert task_id in html
    assert "All 4 tasks finished." in html
    assert "difficulty 2 (hardest)" in html


def test_summary_json_matches_statistics_api(report: Path, tiny_run: Path):
    summary = json.loads(report.with_suffix(".summary.json").read_text(encoding="utf-8"))
    per_case = _per_case(tiny_run)
    rows = {row["task"]: row for row in summary["tasks"]}

    assert len(rows) == 4
    for task_id, cases in per_case.groupby("task_id"):
        expected = stats.summarize(cases["dice"].to_numpy(dtype=float))
        agreement = stats.bland_altman(cases["true_burden"], cases["pred_burden"])
        row = rows[task_id]
        assert row["status"] == "done"
        assert row["dice_n"] == expected.n
        assert row["dice_n_excluded"] == expected.n_excluded
        if expected.n:
            assert row["dice_median"] == pytest.approx(expected.median)
        assert row["burden_bias"] == pytest.approx(agreement.bias)
        assert row["optimizer_steps"] > 0


def test_wilcoxon_is_curriculum_minus_standard(report: Path, tiny_run: Path):
    table = pd.read_csv(report.with_name("tiny.wilcoxon.csv"))
    per_case = _per_case(tiny_run)
    rows = table[(table["subset"] == "all test cases") & (table["metric"] == "abs_burden_error")]

    assert sorted(rows["model"]) == sorted(MODELS)
    for row in rows.itertuples():
        backbone = row.model.removesuffix("-small")
        arms = {
            strategy: cases.set_index("case_id")["abs_burden_error"]
            for strategy, cases in per_case[per_case["backbone"] == backbone].groupby("strategy")
        }
        expected = stats.paired_wilcoxon(
            arms["curriculum"],
            arms["standard"],
            ids_a=arms["curriculum"].index,
            ids_b=arms["standard"].index,
        )
        assert row.other == "curriculum"
        assert row.reference == "standard"
        assert row.n == expected.n
        assert row.median_difference == pytest.approx(expected.median_difference)
        assert row.p == pytest.approx(expected.p)


def test_holm_adjustment_covers_whole_table(report: Path):
    table = pd.read_csv(report.with_name("tiny.wilcoxon.csv"))
    expected = stats.adjust(table["p"].to_numpy(dtype=float), method="holm")

    np.testing.assert_allclose(
        table["p_holm"].to_numpy(dtype=float), expected.p_adjusted, equal_nan=True
    )
    assert set(table["subset"]) == {"all test cases", "difficulty 2 (hardest)"}


def test_table_csvs_written(report: Path):
    for name in ("tasks", "wilcoxon", "budget", "problems", "by_difficulty", "clean_truth"):
        path = report.with_name(f"tiny.{name}.csv")
        assert path.is_file(), name
    assert len(pd.read_csv(report.with_name("tiny.tasks.csv"))) == 4


def test_methods_section_states_conventions(report: Path):
    html = report.read_text(encoding="utf-8")
    methods = html[html.index('<section id="methods">') :]

    for text in (
        "ddof = 1",
        "multiplier = 1.96",
        "zero_method = wilcox",
        "fisher_z",
        "scipy",
        "statsmodels",
    ):
        assert text in methods, text


@pytest.mark.parametrize(
    ("p", "text"),
    [
        (0.0, "< 1e-10"),
        (3e-12, "< 1e-10"),
        (0.0625, "6.25e-02"),
        (1.0, "1.00e+00"),
        (math.nan, "n/a"),
        (None, "n/a"),
    ],
)
def test_format_p(p, text):
    assert format_p(p) == text


def test_unfinished_tasks_are_listed(run_copy: Path, tmp_path: Path):
    failed = run_copy / "unet-small--curriculum--seed0"
    (failed / "DONE").unlink()
    (failed / "error.txt").write_text(
        "Traceback (most recent call last):\nRuntimeError: out of memory\n"
    )
    (run_copy / "attention_unet-small--curriculum--seed0" / "DONE").unlink()
    shutil.rmtree(run_copy / "attention_unet-small--standard--seed0")

    output = tmp_path / "damaged.html"
    write_report([run_copy], output)
    html = output.read_text(encoding="utf-8")
    problems = pd.read_csv(tmp_path / "damaged.problems.csv").set_index("task")

    assert problems.loc["unet-small--curriculum--seed0", "status"] == "failed"
    assert "RuntimeError: out of memory" in problems.loc["unet-small--curriculum--seed0", "reason"]
    assert problems.loc["attention_unet-small--curriculum--seed0", "status"] == "incomplete"
    assert problems.loc["attention_unet-small--standard--seed0", "status"] == "missing"
    assert "3 task(s) did not finish" in html
    assert "RuntimeError: out of memory" in html
    assert "no gallery for unet-small" in html.lower()


def test_not_a_run_folder_is_clear_error(tmp_path: Path):
    result = CliRunner().invoke(main, ["report", str(tmp_path), "--out", str(tmp_path / "x.html")])

    assert result.exit_code == 2
    assert "is not a run folder" in result.output
    assert "run.json" in result.output
    assert not (tmp_path / "x.html").exists()


def test_run_without_finished_task_is_error(run_copy: Path, tmp_path: Path):
    for done in run_copy.glob("*/DONE"):
        done.unlink()

    result = CliRunner().invoke(main, ["report", str(run_copy), "--out", str(tmp_path / "x.html")])

    assert result.exit_code == 2
    assert "no finished task" in result.output
    assert "incomplete" in result.output


def test_cli_default_output_path(tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)

    result = CliRunner().invoke(main, ["report", str(tiny_run)])

    assert result.exit_code == 0, result.output
    assert (tmp_path / "reports" / f"{tiny_run.name}.html").is_file()
    assert (tmp_path / "reports" / f"{tiny_run.name}.summary.json").is_file()


def test_merged_runs_and_case_list(tiny_run: Path, run_copy: Path, tmp_path: Path):
    case_ids = pd.read_csv(tiny_run / "split.csv", dtype={"case_id": str}).query("split == 'test'")[
        "case_id"
    ]
    case_list = tmp_path / "chosen.txt"
    case_list.write_text("\n".join(case_ids[:4]) + "\n")
    output = tmp_path / "merged.html"

    result = CliRunner().invoke(
        main,
        [
            "report",
            str(tiny_run),
            str(run_copy),
            "--out",
            str(output),
            "--case-list",
            f"chosen={case_list}",
        ],
    )

    assert result.exit_code == 0, result.output
    tasks = pd.read_csv(tmp_path / "merged.tasks.csv")
    wilcoxon = pd.read_csv(tmp_path / "merged.wilcoxon.csv")
    assert len(tasks) == 8
    assert tasks["task"].str.contains("/").all()
    assert "chosen" in set(wilcoxon["subset"])
    # Both runs hold the same cases, so each case enters the paired test once.
    assert wilcoxon.query("subset == 'all test cases'")["n"].max() == len(case_ids)


def test_invalid_case_list_is_clear_error(tiny_run: Path, tmp_path: Path):
    result = CliRunner().invoke(
        main, ["report", str(tiny_run), "--case-list", str(tmp_path / "missing.txt")]
    )

    assert result.exit_code == 2
    assert "NAME=FILE" in result.output


def test_gallery_selects_best_median_worst_improved():
    dice = pd.DataFrame(
        {
            "standard": [0.9, 0.5, 0.1, 0.2, 0.3, np.nan],
            "curriculum": [0.95, 0.6, 0.1, 0.7, 0.3, 0.8],
        },
        index=["a", "b", "c", "d", "f", "e"],
    )

    roles = select_gallery_cases(dice, "standard", "curriculum")

    assert roles == {"a": "best", "d": "median and most improved", "c": "worst"}


@pytest.mark.browser
def test_report_renders_in_chromium(report: Path, tmp_path: Path):
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is not installed (CI installs the Debian chromium package)")
    from PIL import Image

    screenshot = tmp_path / "report.png"
    command = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={screenshot}", "--window-size=1400,4000",
        report.resolve().as_uri(),
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, timeout=120)

    with Image.open(screenshot) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colours is not None
    assert len(colours) > 200
    most_common = max(count for count, _ in colours)
    assert most_common < 0.95 * sum(count for count, _ in colours)


def test_false_positive_slices_counted(report: Path, tiny_run: Path):
    per_case = _per_case(tiny_run)
    tasks = pd.read_csv(report.with_name("tiny.tasks.csv"))

    assert (per_case["true_burden"] == 0).any(), "the tiny run should have scar-free test slices"
    for _, row in tasks.iterrows():
        rows = per_case[per_case["task_id"] == row["task"]]
        assert len(rows) > 0, row["task"]
        scar_free = rows["true_burden"] == 0
        assert row["scar_free_n"] == scar_free.sum()
        assert row["scar_free_false_positive"] == (scar_free & (rows["pred_burden"] > 0)).sum()
    assert "false-positive slices" in report.read_text(encoding="utf-8")
