"""Wormbox's pytest plugin for the vendored ceph/s3-tests (not upstream code).

Writes one line per test to the file named by WORMBOX_S3TESTS_RESULTS:
`<test name>\t<pass|fail|error|skip>\t<reason>\t<teardown failure>`. A
test's outcome is its call's: the suite's teardown empties every bucket the
test made, which Wormbox refuses for versions under retention, and that
refusal is the archive working, not the test failing (it is kept in the last
column); a failure in setup counts as `error`.
"""

import os
import sys

import pytest

_results = {}
_teardowns = {}


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    # Each test gets its own bucket prefix, so the buckets an earlier test
    # left locked (Wormbox keeps them for their retention) are not in the
    # way of the suite's setup, which empties every bucket under the prefix.
    functional = sys.modules.get("s3tests.functional")
    if functional is not None and functional.prefix is not None:
        functional.prefix = functional.choose_bucket_prefix(template="wormbox-{random}-")


def _reason(report):
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    return " ".join(text.split())[:300]


def pytest_runtest_logreport(report):
    name = report.nodeid.split("::")[-1]
    if report.when == "setup":
        if report.failed:
            _results[name] = ("error", _reason(report))
        elif report.skipped:
            _results[name] = ("skip", _reason(report))
    elif report.when == "teardown":
        if report.failed:
            _teardowns[name] = _reason(report)
    elif report.when == "call":
        if report.passed:
            _results[name] = ("pass", "")
        elif report.skipped:
            _results[name] = ("skip", _reason(report))
        else:
            _results[name] = ("fail", _reason(report))


def pytest_sessionfinish(session):
    path = os.environ.get("WORMBOX_S3TESTS_RESULTS")
    if not path:
        return
    with open(path, "w") as out:
        for name in sorted(_results):
            outcome, reason = _results[name]
            teardown = _teardowns.get(name, "")
            out.write(f"{name}\t{outcome}\t{reason}\t{teardown}\n")
