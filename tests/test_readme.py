"""The README's commands and the CI script stay in step."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci in (ROOT / "README.md").read_text()


def test_readme_has_a_main_job_command():
    assert "python -m skmic demo" in (ROOT / "README.md").read_text()
