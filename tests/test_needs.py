"""tests/needs.py: a missing dependency skips a test here and fails it under CI."""

from __future__ import annotations

import pytest

from tests.needs import unavailable, under_ci


@pytest.mark.parametrize("value", [None, "", "false", "0", "1"])
def test_a_missing_dependency_skips_outside_ci_saying_what_and_why(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.skip.Exception, match=r"^needs psql: apt-get install it$"):
        unavailable("psql", "apt-get install it")


@pytest.mark.parametrize("value", ["true", "True", "TRUE", " true "])
def test_a_missing_dependency_fails_under_ci(monkeypatch, value):
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match=r"^needs psql: apt-get install it$"):
        unavailable("psql", "apt-get install it")


def test_under_ci_reads_the_environment_it_is_given():
    assert under_ci({"CI": "true"}) and not under_ci({}) and not under_ci({"CI": "yes"})
