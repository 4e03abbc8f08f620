"""Tests leave the user's files alone: every test runs in its own Dagster home and working directory."""

from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy as sa

from obs_pipelines.orchestration.local_runs import local_instance
from obs_pipelines.settings import load_settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def test_each_test_has_its_own_dagster_home_outside_the_project():
    home = Path(os.environ["DAGSTER_HOME"]).resolve()
    assert PROJECT_ROOT not in home.parents and home != PROJECT_ROOT / ".dagster_home"
    assert Path(local_instance().root_directory).resolve() == home


def test_each_test_has_its_own_working_directory_so_the_default_store_is_private():
    assert PROJECT_ROOT not in Path.cwd().resolve().parents and Path.cwd().resolve() != PROJECT_ROOT
    default_store = Path(sa.make_url(load_settings().db_url).database).resolve()
    assert PROJECT_ROOT not in default_store.parents
