from collections import Counter

from obs_pipelines.synth.generator import diurnal_factor


def test_peak_hour_has_more_traffic_than_night(day_traces):
    per_hour = Counter(t[0]["start_time"].hour for t in day_traces)
    assert per_hour[15] > 2.5 * per_hour[3]
    assert max(per_hour, key=per_hour.get) in range(12, 19)
    assert min(per_hour, key=per_hour.get) in (0, 1, 2, 3, 4, 5, 6)


def test_mean_rate_over_a_day_is_the_requested_rate(day_traces):
    assert abs(len(day_traces) / 86400 - 0.05) < 0.05 * 0.05
    assert abs(sum(diurnal_factor(h * 3600.0) for h in range(24)) / 24 - 1.0) < 1e-9
