"""Fixtures shared by the tools' tests (tests/conftest.py has already set up the interpreter)."""

import pytest

from fused_inception.kernels import tuned_configs


@pytest.fixture
def tuned_dir(tmp_path, monkeypatch):
    """An empty directory searched for tuned files before the shipped ones (cache cleared)."""
    monkeypatch.setenv(tuned_configs.ENV_DIR, str(tmp_path))
    monkeypatch.delenv(tuned_configs.ENV_SWITCH, raising=False)
    tuned_configs.clear_cache()
    yield tmp_path
    tuned_configs.clear_cache()
