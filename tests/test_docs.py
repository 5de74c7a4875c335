"""Documentation that cannot drift: every setting is in the README."""

from pathlib import Path

from queueapp.config import SETTINGS

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_every_setting_is_documented_in_the_readme():
    for setting in SETTINGS:
        assert f"`{setting.name}`" in README, setting.name
        assert f"`{setting.env}`" in README, setting.env


def test_ci_runs_the_readme_test_command():
    ci = (Path(__file__).parent.parent / ".ci" / "run").read_text()
    assert "pip install -e '.[test]' && python -m pytest" in README
    assert "pip install -e '.[test]' && python3 -m pytest" in ci
