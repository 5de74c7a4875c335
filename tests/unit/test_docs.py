"""Documentation that cannot drift: every setting is in the README."""

from pathlib import Path

from queueapp.config import SETTINGS

README = (Path(__file__).parent.parent.parent / "README.md").read_text()


def test_every_setting_is_documented_in_the_readme():
    for setting in SETTINGS:
        assert f"`{setting.name}`" in README, setting.name
        assert f"`{setting.env}`" in README, setting.env


def test_ci_runs_the_readme_test_command():
    ci = (Path(__file__).parent.parent.parent / ".ci" / "run").read_text()
    assert "pip install -e '.[test]' && python -m pytest" in README
    assert "pip install -e '.[test]' && python3 -m pytest" in ci


def test_every_endpoint_has_a_curl_example_in_the_api_page():
    from queueapp.api import endpoints

    page = (Path(__file__).parent.parent.parent / "docs" / "api.md").read_text()
    for e in endpoints():
        assert f"`{e.method} {e.path}`" in page or f"`{e.method} {e.path}?" in page, (e.method, e.path)
    assert "docs/api.md" in README
