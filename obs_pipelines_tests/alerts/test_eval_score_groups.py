"""The shipped pack's eval-score rule per scorer x route x prompt version x model (config/example.yaml,
eval_score_by_route_prompt_model) on score rollups computed by online_evals' own rollup from per-response
scores: the combination that broke fires for itself alone; a combination too small or too new is judged
"fewer than 5 samples" / "not enough history", never fired."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from obs_pipelines.alerts.evaluate import evaluate
from obs_pipelines.alerts.rules import parse_rule
from obs_pipelines.online_evals.rollups import COMBINATION, score_rollup

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.yaml"
H = datetime(2026, 11, 5, 12, 0)  # the judged hour; three days and twelve hours of history before it
HOUR = timedelta(hours=1)
HISTORY = [H - d * timedelta(days=1) for d in (1, 2, 3)] + [H - k * HOUR for k in range(1, 13)]


def shipped_rule(name: str = "eval_score_by_route_prompt_model"):
    rules = yaml.safe_load(EXAMPLE.read_text())["alerts"]["rules"]
    return parse_rule(next(r for r in rules if r["name"] == name))


def scores(hour: datetime, route: str, model: str, prompt: str, n: int, mean: float, seed: int) -> list[dict]:
    """n responses of one combination in an hour, groundedness around ``mean`` (spread 0.08, clipped to [0, 1])."""
    rng = np.random.default_rng(seed)
    return [{"trace_id": f"{route}-{prompt}-{hour:%d%H}-{i}", "span_kind": "root", "scorer": "groundedness",
             "scorer_version": "1", "score": float(np.clip(rng.normal(mean, 0.08), 0, 1)), "threshold": 0.5,
             "error": None, "route": route, "model": model, "prompt_version": prompt} for i in range(n)]


def rollups(per_hour) -> pd.DataFrame:
    """score_rollup_hourly rows of each hour (online_evals' rollup of the hour's scores)."""
    frames = []
    for seed, hour in enumerate([*HISTORY, H]):
        frames.append(score_rollup(pd.DataFrame(per_hour(hour, seed)), pd.DataFrame(), hour, hour + HOUR))
    return pd.concat(frames, ignore_index=True)


def judged_hour(per_hour, rule=None) -> dict[tuple, object]:
    rule = rule or shipped_rule()
    return {(r.group["route"], r.group["prompt_version"], r.group["model"]): r
            for r in evaluate(rule, rollups(per_hour), H, H + HOUR)}


def test_the_rollup_holds_each_combination_with_its_parts_in_plain_columns():
    # one hour, two prompt versions on one route and model: two combination rows, their parts in columns
    rows = rollups(lambda hour, seed: scores(hour, "kb", "m1", "v1", 5, 0.9, seed)
                   + scores(hour, "kb", "m1", "v2", 5, 0.9, seed + 100))
    last = rows[(rows["window_start"] == H) & (rows["dimension"] == COMBINATION)]
    assert sorted(zip(last["dimension_value"], last["route"], last["model"], last["prompt_version"],
                      last["scored_count"])) == [("kb | m1 | v1", "kb", "m1", "v1", 5), ("kb | m1 | v2", "kb", "m1", "v2", 5)]


def test_the_combination_that_broke_fires_for_itself_and_its_sibling_stays_quiet():
    # kb serves v1 and v2 on m1, 20 responses each an hour at ~0.9; in the judged hour v2 falls to ~0.3 (a prompt
    # release that stopped grounding its answers), v1 is unchanged
    def per_hour(hour, seed):
        broken = hour == H
        return (scores(hour, "kb", "m1", "v1", 20, 0.9, seed)
                + scores(hour, "kb", "m1", "v2", 20, 0.3 if broken else 0.9, seed + 100))
    results = judged_hour(per_hour)
    assert not results[("kb", "v2", "m1")].passed and results[("kb", "v2", "m1")].judged
    assert results[("kb", "v1", "m1")].judged and results[("kb", "v1", "m1")].passed


def test_a_combination_with_three_responses_an_hour_is_too_small_to_judge_even_when_it_falls():
    # a rarely used model on kb: 3 responses an hour, all three score 0.1 in the judged hour; 3 samples say
    # little, so it is not judged ("fewer than 5 samples") rather than fired; the busy combination is judged
    def per_hour(hour, seed):
        return (scores(hour, "kb", "m1", "v1", 20, 0.9, seed)
                + scores(hour, "kb", "rare", "v1", 3, 0.1 if hour == H else 0.9, seed + 100))
    results = judged_hour(per_hour)
    small = results[("kb", "v1", "rare")]
    assert small.passed and not small.judged and small.detail["not_judged"] == "fewer than 5 samples"
    assert results[("kb", "v1", "m1")].judged


def test_a_new_prompt_version_is_judged_not_enough_history_while_its_route_fires():
    # kb moves from v7 to v8 in the judged hour and v8 scores ~0.3: the combination kb | m1 | v8 has no history
    # (not judged, said so); the route's rule, whose history is kb's, fires
    def per_hour(hour, seed):
        return scores(hour, "kb", "m1", "v8" if hour == H else "v7", 20, 0.3 if hour == H else 0.9, seed)
    new = judged_hour(per_hour)[("kb", "v8", "m1")]
    assert new.passed and not new.judged and new.detail["not_judged"].startswith("not enough history")
    [route] = [r for r in evaluate(shipped_rule("eval_score_by_route"), rollups(per_hour), H, H + HOUR)
               if r.group == {"scorer": "groundedness", "route": "kb"}]
    assert not route.passed


def test_rows_written_before_the_route_column_existed_group_by_their_dimension_value():
    # score rollups stored before migration 0014 have a null route column on their route rows
    def per_hour(hour, seed):
        return scores(hour, "kb", "m1", "v1", 20, 0.3 if hour == H else 0.9, seed)
    rows = rollups(per_hour)
    rows.loc[rows["dimension"] == "route", "route"] = None
    [result] = [r for r in evaluate(shipped_rule("eval_score_by_route"), rows, H, H + HOUR)]
    assert result.group == {"scorer": "groundedness", "route": "kb"} and not result.passed
