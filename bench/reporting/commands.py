"""``bench report``: write the HTML report of one or more run folders.

Example:
    $ bench report runs/smoke
    $ bench report runs/seed0 runs/seed1 --out reports/seeds.html --case-list scar_free=cases.txt
"""

from __future__ import annotations

import logging
import shlex
from pathlib import Path

import click

from bench.errors import ConfigError

__all__ = ["report", "read_case_list"]

logger = logging.getLogger(__name__)


def read_case_list(path: Path) -> list[str]:
    """Read case ids from a text file (one per line) or a CSV with a ``case_id`` column.

    Raises:
        ConfigError: the file is missing, empty, or a CSV without ``case_id``.
    """
    if not path.is_file():
        raise ConfigError(f"case list not found: {path}; pass a file with one case id per line")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lines:
        raise ConfigError(f"case list {path} is empty; put one case id per line")

    if path.suffix.lower() != ".csv":
        return lines
    columns = [column.strip() for column in lines[0].split(",")]
    if "case_id" not in columns:
        raise ConfigError(f"case list {path} has no 'case_id' column (columns: {columns})")
    position = columns.index("case_id")
    return [line.split(",")[position].strip() for line in lines[1:]]


def _parse_case_lists(values: tuple[str, ...]) -> dict[str, list[str]]:
    case_lists = {}
    for value in values:
        name, separator, file_name = value.partition("=")
        if not separator or not name or not file_name:
            raise ConfigError(
                f"invalid --case-list {value!r}; write NAME=FILE, e.g. scar_free=cases.txt"
            )
        case_lists[name] = read_case_list(Path(file_name))
    return case_lists


@click.command("report")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    "output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="HTML file to write [default: reports/<run-name>.html]; the summary JSON and CSVs go beside it.",
)
@click.option(
    "--case-list",
    "case_lists",
    multiple=True,
    metavar="NAME=FILE",
    help="Also compare the strategies on these cases (one id per line, or a CSV with case_id). Repeatable.",
)
def report(runs: tuple[Path, ...], output: Path | None, case_lists: tuple[str, ...]) -> None:
    """Write the HTML report of RUNS (several seeds or executions merge into one comparison)."""
    from bench.reporting.render import write_report

    arguments = ["bench", "report", *map(str, runs)]
    arguments += ["--out", str(output)] if output else []
    arguments += [part for value in case_lists for part in ("--case-list", value)]
    written = write_report(
        runs, output, _parse_case_lists(case_lists), command=shlex.join(arguments)
    )
    click.echo(f"wrote {written[0]}")
    for path in written[1:]:
        logger.info("wrote %s", path)
