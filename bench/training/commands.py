"""``bench list strategies``: the command line of the training package.

Example:
    $ bench list strategies
    standard                All training slices, reshuffled each epoch, ...
    curriculum              Three stages on cumulative sets (easy, +medium, +hard), ...
"""

from __future__ import annotations

import click

__all__ = ["list_strategies"]


@click.command("strategies")
def list_strategies() -> None:
    """List the registered training strategies with a one-line description each."""
    from bench.registry import STRATEGIES

    width = max((len(name) for name in STRATEGIES.names()), default=0) + 2
    for name, strategy_class in STRATEGIES.items():
        description = getattr(strategy_class, "description", "") or ""
        click.echo(f"{name:<{width}}{description}")
