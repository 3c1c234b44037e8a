"""``python -m simulations``: run a scenario and write its report (a thin command line)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .scenario import PROFILES_HELP, ScenarioError, build_schedule, builtin_names, load_scenario


@click.group()
def main() -> None:
    """fieldsync's weak-network simulation harness."""


@main.command()
@click.argument("scenario")
@click.option("--seed", type=int, default=None, help="Override the scenario's seed.")
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Report directory [default: sim-out/SCENARIO].",
)  # fmt: skip
@click.option("--short", is_flag=True, help="Run the scenario's short form (what CI runs).")
@click.option(
    "--database-url", default=None,
    help="Server database (e.g. postgresql+psycopg://…); default: embedded SQLite in OUT.",
)  # fmt: skip
def run(
    scenario: str, seed: int | None, out: Path | None, short: bool, database_url: str | None
) -> None:
    """Run SCENARIO (a .toml file or a built-in name); exit 1 if a check failed."""
    from .runner import run_scenario

    try:
        parsed = load_scenario(scenario, short=short).with_seed(seed)
    except ScenarioError as exc:
        raise click.ClickException(str(exc)) from None
    out = out or Path("sim-out") / parsed.name
    click.echo(f"running {parsed.name} (seed {parsed.seed}, time scale {parsed.time_scale:g})")
    report = run_scenario(parsed, out, database_url=database_url, log=click.echo)
    for check in report["checks"]:
        click.echo(f"  {'ok    ' if check['ok'] else 'FAILED'} {check['check']}: {check['detail']}")
    click.echo(f"report: {out / 'report.html'}")
    sys.exit(0 if report["ok"] else 1)


@main.command("list")
def list_() -> None:
    """List the built-in scenarios and the network profiles."""
    for name in builtin_names():
        scenario = load_scenario(name)
        click.echo(f"{name:22} {scenario.description}")
    click.echo("\nprofiles:")
    click.echo(PROFILES_HELP)


@main.command()
@click.argument("scenario")
@click.option("--seed", type=int, default=None)
@click.option("--short", is_flag=True)
def schedule(scenario: str, seed: int | None, short: bool) -> None:
    """Print the exact schedule SCENARIO expands to for a seed (JSON)."""
    import json

    try:
        parsed = load_scenario(scenario, short=short).with_seed(seed)
    except ScenarioError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(build_schedule(parsed).as_dict(), indent=1))


if __name__ == "__main__":
    main()
