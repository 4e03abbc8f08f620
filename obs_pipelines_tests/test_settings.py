"""The settings file: a misspelt key fails loudly with the file, the key and the name that was meant."""

from __future__ import annotations

from pathlib import Path

import pytest

from obs_pipelines.settings import SettingsError, load_settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.yaml"
    path.write_text(text)
    return path


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv("OBS_PIPELINES_DB_URL", raising=False)
    monkeypatch.delenv("OBS_PIPELINES_CONFIG", raising=False)


def test_unknown_top_level_keys_fail_naming_the_file_the_key_and_the_closest_valid_name(tmp_path):
    path = write(tmp_path, "slo:\n  - name: x\nphasess: [monitoring]\n")
    with pytest.raises(SettingsError) as raised:
        load_settings(path)
    message = str(raised.value)
    assert f"{path}: unknown key 'slo' (did you mean 'slos'?)" in message
    assert f"{path}: unknown key 'phasess' (did you mean 'phases'?)" in message


def test_unknown_key_inside_an_slo_fails_with_the_closest_slo_field(tmp_path):
    path = write(tmp_path, 'slos:\n  - name: x\n    metric: error_rate\n    objective: "< 0.1"\n    tagret: 0.9\n')
    with pytest.raises(SettingsError, match=r"unknown key 'slos\.0\.tagret' \(did you mean 'target'\?\)"):
        load_settings(path)


def test_unknown_key_with_no_close_name_lists_the_valid_keys(tmp_path):
    path = write(tmp_path, "zzzz: 1\n")
    with pytest.raises(SettingsError, match=r"unknown key 'zzzz' \(valid keys: .*partitions_start.*slos"):
        load_settings(path)


def test_a_wrong_value_names_the_file_and_the_key(tmp_path):
    path = write(tmp_path, "top_n_users: many\n")
    with pytest.raises(SettingsError, match=rf"{path}: top_n_users: "):
        load_settings(path)


def test_the_example_config_uses_only_valid_keys():
    settings = load_settings(PROJECT_ROOT / "config" / "example.yaml")
    assert settings.slos and settings.phases
