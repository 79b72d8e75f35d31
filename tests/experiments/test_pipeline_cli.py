"""``python -m experiments.pipeline`` is a click command like every other entry point."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from experiments.pipeline import main


def test_the_pipeline_command_describes_its_options_and_refuses_unknown_ones() -> None:
    runner = CliRunner()
    shown = runner.invoke(main, ["--help"])
    assert shown.exit_code == 0 and "--db" in shown.output and "--serial" in shown.output
    refused = runner.invoke(main, ["--workers", "3"])
    assert refused.exit_code == 2 and "--workers" in refused.output


def test_the_module_runs_as_a_command() -> None:
    done = subprocess.run([sys.executable, "-m", "experiments.pipeline", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: python -m experiments.pipeline [OPTIONS]")
