"""``--dist loadgroup`` (pyproject's addopts) keeps the tests of one ``xdist_group`` on one
worker, so a module fixture they share (a reference run, a whole search) is computed once. xdist
does it by adding the group's name to the test's id; where it cannot (pytest 9.2 with
pytest-xdist 3.8), the groups are silently ignored and each worker trains the shared run again."""

import pytest


@pytest.mark.xdist_group("probe")
def test_a_grouped_test_carries_its_group_under_pytest_n(request: pytest.FixtureRequest):
    if not hasattr(request.config, "workerinput"):
        pytest.skip("groups exist only under pytest -n (the README's test command)")
    assert request.node.nodeid.endswith("@probe")
