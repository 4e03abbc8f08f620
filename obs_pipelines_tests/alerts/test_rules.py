"""Rules in the settings YAML: the shipped example loads; an invalid file names the file, the rule and the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from obs_pipelines.alerts.rules import AnomalyRule, BurnRateRule, EvalScoreRule, ThresholdRule
from obs_pipelines.settings import SettingsError, load_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.yaml"


def write(tmp_path, alerts: dict) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"alerts": alerts}))
    return path


def test_example_rules_load_and_cover_every_kind_and_topic():
    rules = load_settings(EXAMPLE).alerts.parsed_rules()
    kinds = {type(r) for r in rules}
    assert kinds == {ThresholdRule, AnomalyRule, EvalScoreRule, BurnRateRule}
    text = " ".join(f"{r.name} {getattr(r, 'metric', '')} {r.table}" for r in rules)
    for topic in ("latency", "error_rate", "rate_limit", "cost", "empty", "loop", "groundedness"):
        assert topic in text


def test_a_missing_field_names_the_file_the_rule_and_the_field(tmp_path):
    path = write(tmp_path, {"rules": [{"name": "slow", "kind": "threshold", "table": "request_rollup_hourly",
                                       "metric": "latency_p95_ms"}]})
    with pytest.raises(SettingsError) as err:
        load_settings(path)
    message = str(err.value)
    assert str(path) in message and "'slow'" in message and "'threshold'" in message


def test_a_misspelt_key_of_a_rule_is_an_error_naming_it(tmp_path):
    path = write(tmp_path, {"rules": [{"name": "slow", "kind": "threshold", "table": "t", "metric": "m",
                                       "threshold": 1, "treshold_pct": 2}]})
    with pytest.raises(SettingsError, match=r"rule 'slow': field 'treshold_pct': unknown key"):
        load_settings(path)


def test_an_unnamed_rule_is_named_by_its_position(tmp_path):
    path = write(tmp_path, {"rules": [{"kind": "anomaly", "table": "t", "metric": "m"}]})
    with pytest.raises(SettingsError, match=r"rule #1: field 'name'"):
        load_settings(path)


def test_an_unknown_kind_is_an_error(tmp_path):
    path = write(tmp_path, {"rules": [{"name": "x", "kind": "thresold", "table": "t", "metric": "m"}]})
    with pytest.raises(SettingsError, match=r"rule 'x'"):
        load_settings(path)


def test_a_rule_sending_to_an_undefined_destination_is_an_error(tmp_path):
    path = write(tmp_path, {"rules": [{"name": "x", "kind": "threshold", "table": "t", "metric": "m",
                                       "threshold": 1, "destinations": ["pager"]}]})
    with pytest.raises(SettingsError, match=r"rule 'x': field 'destinations': unknown destination"):
        load_settings(path)


def test_two_rules_with_one_name_are_an_error(tmp_path):
    rule = {"name": "x", "kind": "threshold", "table": "t", "metric": "m", "threshold": 1}
    with pytest.raises(SettingsError, match="unique"):
        load_settings(write(tmp_path, {"rules": [rule, rule]}))


def test_a_webhook_destination_takes_its_url_from_an_env_var_only(tmp_path):
    path = write(tmp_path, {"destinations": {"hook": {"type": "webhook", "url": "https://secret"}}})
    with pytest.raises(SettingsError, match="url"):
        load_settings(path)


def test_a_table_name_that_is_not_an_identifier_is_refused(tmp_path):
    path = write(tmp_path, {"rules": [{"name": "x", "kind": "threshold", "table": "t; drop table spans",
                                       "metric": "m", "threshold": 1}]})
    with pytest.raises(SettingsError, match=r"rule 'x'"):
        load_settings(path)
