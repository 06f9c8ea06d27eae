"""nox sessions: tests, slow, lint, smoke and report.

Every session installs the CPU build of torch 2.13.0 in the same pip command
as the project, because a bare install resolves to a multi-GB CUDA build.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint"]

SMOKE_RUN = "runs/smoke"
SMOKE_BASELINE = "baselines/smoke.json"
nox.options.reuse_existing_virtualenvs = True

TORCH = "torch==2.13.0"


def install_project(session: nox.Session, extras: str = "test,cluster") -> None:
    session.install(TORCH, "-e", f".[{extras}]")


@nox.session
def tests(session: nox.Session) -> None:
    """The default test run (slow tests excluded)."""
    install_project(session)
    session.run("pytest", *session.posargs)


@nox.session
def slow(session: nox.Session) -> None:
    """Only the tests marked slow: training to convergence, whole smoke runs."""
    install_project(session)
    session.run("pytest", "-m", "slow", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff on the package, tests and this file."""
    session.install("ruff")
    session.run("ruff", "check", "bench", "tests", "noxfile.py")
    session.run("ruff", "format", "--check", "bench", "tests", "noxfile.py")


@nox.session
def smoke(session: nox.Session) -> None:
    """Run (or resume) the smoke matrix, then check it against the stored baseline."""
    install_project(session)
    session.run("bench", "run", "--matrix", "smoke", "--out", SMOKE_RUN)
    session.run("bench", "check", SMOKE_RUN, "--baseline", SMOKE_BASELINE)


@nox.session
def report(session: nox.Session) -> None:
    """Write the HTML report of the smoke run (run `nox -s smoke` first)."""
    install_project(session)
    session.run("bench", "report", SMOKE_RUN, "--out", "reports/smoke.html")
