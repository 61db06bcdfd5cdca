"""autograder.course_dir: reading the course's config leaves this process's environment alone."""

from __future__ import annotations

import os

import pytest

from autograder.course_dir import ROOT, environ_kept, load_config


def test_environ_kept_undoes_additions_changes_and_removals_also_after_an_error(monkeypatch):
    monkeypatch.setenv("BN_TEST_CHANGED", "before")
    monkeypatch.setenv("BN_TEST_REMOVED", "here")
    monkeypatch.delenv("BN_TEST_ADDED", raising=False)
    before = dict(os.environ)
    with pytest.raises(RuntimeError, match="inside"), environ_kept():
        os.environ["BN_TEST_ADDED"] = "new"
        os.environ["BN_TEST_CHANGED"] = "after"
        del os.environ["BN_TEST_REMOVED"]
        raise RuntimeError("inside")
    assert dict(os.environ) == before


def test_load_config_reads_the_course_and_leaves_pythonpath_alone(monkeypatch):
    # nbgrader_config.py puts the course first on PYTHONPATH for nbgrader's own kernels
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    config = load_config(ROOT)
    assert config.CourseDirectory.course_id == "batchnorm-from-scratch"
    assert os.environ["PYTHONPATH"] == "/elsewhere"
