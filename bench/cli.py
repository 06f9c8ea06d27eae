"""The ``bench`` command line.

Example:
    $ bench run --matrix smoke
    $ bench report runs/smoke
    $ bench check runs/smoke --baseline baselines/smoke.json

Subcommands live beside the code they drive and are imported only when
invoked, so ``bench --help`` does not pay for importing torch.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from bench import __version__
from bench.errors import ScarbenchError
from bench.registry import load_entry_point_plugins, load_plugin

__all__ = ["main", "LazyGroup"]

logger = logging.getLogger(__name__)


class LazyGroup(click.Group):
    """A click group whose subcommands are imported only when invoked.

    Args:
        lazy_commands: command name → ``("module:attribute", "one-line help")``;
            the help line is shown by ``--help`` without importing the module.
    """

    def __init__(
        self, *args, lazy_commands: dict[str, tuple[str, str]] | None = None, **kwargs
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy_commands))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy_commands:
            module_name, attribute = self.lazy_commands[name][0].split(":")
            return getattr(importlib.import_module(module_name), attribute)
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_line) for name, (_, help_line) in self.lazy_commands.items()]
        for name in super().list_commands(ctx):
            command = super().get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str()))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(sorted(rows))

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ScarbenchError as error:
            # One line for the user; the traceback is kept for --verbose.
            logger.debug("command failed", exc_info=True)
            click.echo(f"error: {error}", err=True)
            sys.exit(2)


@click.group(
    cls=LazyGroup,
    lazy_commands={
        "data": ("bench.data.commands:data", "Validate, import, synthesise and inspect datasets."),
        "run": (
            "bench.runs.commands:run",
            "Train and evaluate a matrix of tasks into a run folder.",
        ),
        "status": ("bench.runs.commands:status", "Show the state of every task in a run folder."),
        "report": ("bench.reporting.commands:report", "Write the HTML report of one or more runs."),
        "check": (
            "bench.regression:check",
            "Compare a run with a stored baseline; exit 1 on regression.",
        ),
        "baseline": ("bench.regression:baseline", "Write or update a stored baseline."),
        "perf": ("bench.perf:perf", "Measure engine overhead and throughput."),
    },
)
@click.version_option(__version__, prog_name="scarbench")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.option(
    "--plugin",
    "plugins",
    multiple=True,
    metavar="MODULE",
    help="Import MODULE before running, so that its backbones or strategies register.",
)
def main(verbose: int, plugins: tuple[str, ...]) -> None:
    """scarbench: train and compare scar segmentation backbones and strategies."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    load_entry_point_plugins()
    for module in plugins:
        load_plugin(module)


@main.group(
    "list",
    cls=LazyGroup,
    lazy_commands={
        "backbones": (
            "bench.models.commands:list_backbones",
            "Backbones, presets and their sizes.",
        ),
        "strategies": ("bench.training.commands:list_strategies", "Training strategies."),
        "matrices": ("bench.runs.commands:list_matrices", "Task matrices for `bench run`."),
        "datasets": ("bench.data.commands:list_datasets", "Registered datasets."),
    },
)
def list_group() -> None:
    """List registered backbones, strategies, matrices and datasets."""


if __name__ == "__main__":
    main()
