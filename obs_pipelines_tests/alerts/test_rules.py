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


def example_rules() -> list:
    return load_settings(EXAMPLE).alerts.parsed_rules()


def test_every_shipped_rule_judges_a_group_against_its_own_history():
    # no absolute number of any one app: anomaly rules (or the SLO burn rate, relative to the SLO's own target)
    rules = example_rules()
    assert {type(r) for r in rules} == {AnomalyRule, BurnRateRule}
    for rule in (r for r in rules if isinstance(r, AnomalyRule)):
        assert rule.baseline == "both" and rule.min_ratio > 1 and rule.min_baseline_windows >= 3, rule.name


def test_the_shipped_pack_covers_every_family_where_its_cause_lives():
    groups = {r.name: (r.table, r.group_by) for r in example_rules() if isinstance(r, AnomalyRule)}
    wanted = {("step_rollup_hourly", ("span_kind", "span_name")), ("request_rollup_hourly", ("route",)),
              ("error_rollup_hourly", ("provider",)), ("error_rollup_hourly", ("error_class",)),
              ("usage_rollup_hourly", ("route",)), ("usage_rollup_hourly", ("prompt_version",)),
              ("usage_rollup_hourly", ("model",)), ("retrieval_log", ("route", "span_name")),
              ("agent_paths", ("route",)), ("score_rollup_hourly", ("scorer", "route")),
              ("score_rollup_hourly", ("scorer", "prompt_version")), ("score_rollup_hourly", ("scorer", "model"))}
    seen = {(t, tuple([g] if isinstance(g, str) else g)) for t, g in groups.values()}
    assert wanted <= seen


def test_only_rates_and_scores_carry_an_absolute_bar():
    # a rate or a [0, 1] score is unit-free, so an absolute change of it is too; latencies and costs have none
    for rule in (r for r in example_rules() if isinstance(r, AnomalyRule)):
        unit_free = rule.test == "binomial" or rule.table in ("score_rollup_hourly", "retrieval_log")
        assert rule.min_abs_change == 0 or unit_free, rule.name


def test_the_commented_absolute_rules_load_when_uncommented(tmp_path):
    # example.yaml shows absolute thresholds "for teams that know their numbers": they must stay valid
    text = EXAMPLE.read_text()
    block = text[text.index("for teams that know their numbers"):text.index("# ---- offline evals")]
    rules = yaml.safe_load("\n".join(line.replace("    # ", "", 1) for line in block.splitlines()[2:]
                                      if line.startswith("    # ")))
    parsed = load_settings(write(tmp_path, {"rules": rules})).alerts.parsed_rules()
    assert {type(r) for r in parsed} == {ThresholdRule, EvalScoreRule}


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
