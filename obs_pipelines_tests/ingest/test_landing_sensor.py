"""The landing-directory sensor: one ingest run per new file content once the file is quiet, bounded retries
of a failed run, and ingested files moved out of the way (processed/, failed/)."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import dagster as dg
import pytest

from obs_pipelines.ingest.defs import build_landing_sensor, ingest_file_job
from obs_pipelines.ingest.landing import LandingPolicy
from obs_pipelines.orchestration.resource import TraceStore
from obs_pipelines.settings import Settings
from obs_pipelines_tests.ingest.otlp_builders import request as otlp_request
from obs_pipelines_tests.ingest.otlp_builders import span, span_rows

QUIET0 = LandingPolicy(quiet_seconds=0)


@pytest.fixture
def landing(tmp_path) -> Path:
    path = tmp_path / "landing"
    path.mkdir()
    return path


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def tick(sensor, instance, cursor):
    context = dg.build_sensor_context(instance=instance, cursor=cursor)
    return sensor.evaluate_tick(context)


def paths_of(result) -> list[str]:
    return [r.run_config["ops"]["ingest_landed_file"]["config"]["path"] for r in result.run_requests]


def one_span_file(path: Path, span_id: str = "b7ad6b7169203331") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(otlp_request(span(span_id=span_id))) + "\n")
    return path


def aged(path: Path, seconds: float = 3600) -> Path:
    """As if last written `seconds` ago."""
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def execute(run_request, instance, trace_store: TraceStore):
    """Run what the sensor requested, the way the daemon would (same config and tags), in-process."""
    return ingest_file_job.execute_in_process(
        run_config=run_request.run_config,
        instance=instance,
        tags=run_request.tags,
        resources={"trace_store": trace_store},
        raise_on_error=False,
    )


class UnreachableStore(TraceStore):
    """A store that is down, failing at once (the runner's own connection retries would take ~15 s a run)."""

    @property
    def engine(self):
        raise ConnectionError("trace store unreachable")


def down(tmp_path) -> TraceStore:
    return UnreachableStore(db_url="sqlite://")


def broken_store(tmp_path) -> TraceStore:
    """A store whose database cannot be opened (its path is a directory): every ingest run fails."""
    (tmp_path / "a-directory.db").mkdir(exist_ok=True)
    return TraceStore(db_url=f"sqlite:///{tmp_path / 'a-directory.db'}")


# ---- one run per new content ------------------------------------------------------------------------------


def test_new_file_gives_one_run_request_keyed_by_its_content_hash(landing, real_traces_dir, instance):
    shutil.copy(real_traces_dir / "framework-traces.otlp.jsonl", landing / "a.jsonl")
    result = tick(build_landing_sensor(str(landing), QUIET0), instance, None)
    assert len(result.run_requests) == 1
    request = result.run_requests[0]
    assert request.run_key.startswith("ingest:")
    assert paths_of(result) == [str(landing / "a.jsonl")]


def test_same_file_on_the_next_tick_gives_no_run_request(landing, real_traces_dir, instance):
    shutil.copy(real_traces_dir / "framework-traces.otlp.jsonl", landing / "a.jsonl")
    sensor = build_landing_sensor(str(landing), QUIET0)
    first = tick(sensor, instance, None)
    second = tick(sensor, instance, first.cursor)
    assert second.run_requests == []


def test_a_renamed_copy_of_content_being_ingested_gives_no_run_request(landing, real_traces_dir, instance):
    shutil.copy(real_traces_dir / "framework-traces.otlp.jsonl", landing / "a.jsonl")
    sensor = build_landing_sensor(str(landing), QUIET0)
    first = tick(sensor, instance, None)
    shutil.copy(landing / "a.jsonl", landing / "copy-of-a.jsonl")
    second = tick(sensor, instance, first.cursor)
    assert second.run_requests == []


def test_a_second_new_file_gives_exactly_one_more_run_request(landing, real_traces_dir, instance):
    shutil.copy(real_traces_dir / "framework-traces.otlp.jsonl", landing / "a.jsonl")
    sensor = build_landing_sensor(str(landing), QUIET0)
    first = tick(sensor, instance, None)
    (landing / "b.jsonl").write_text('{"resourceSpans": []}\n')
    second = tick(sensor, instance, first.cursor)
    assert paths_of(second) == [str(landing / "b.jsonl")]


def test_files_still_being_written_are_not_ingested(landing, instance):
    (landing / "c.jsonl.part").write_text("{}\n")
    (landing / ".d.jsonl").write_text("{}\n")
    assert tick(build_landing_sensor(str(landing), QUIET0), instance, None).run_requests == []


def test_a_cursor_of_the_first_format_counts_its_files_as_requested(landing, instance):
    path = aged(one_span_file(landing / "a.jsonl"))
    sensor = build_landing_sensor(str(landing), LandingPolicy(archive=False))
    first = tick(sensor, instance, None)
    sha = json.loads(first.cursor)["files"][str(path)][2]
    old_cursor = json.dumps({str(path): [path.stat().st_size, path.stat().st_mtime_ns, sha]})
    assert tick(sensor, instance, old_cursor).run_requests == []


# ---- quiet time / .done marker ------------------------------------------------------------------------------


def test_a_file_is_not_requested_until_it_has_been_quiet_for_the_configured_time(landing, instance):
    clock = Clock()
    one_span_file(landing / "a.jsonl")
    sensor = build_landing_sensor(str(landing), LandingPolicy(quiet_seconds=30), clock=clock)
    first = tick(sensor, instance, None)
    assert first.run_requests == []
    assert "1 file(s) not quiet yet" in first.skip_message
    clock.now += 31
    assert paths_of(tick(sensor, instance, first.cursor)) == [str(landing / "a.jsonl")]


def test_a_file_appended_to_within_the_quiet_time_waits_again(landing, instance):
    clock = Clock()
    path = one_span_file(landing / "a.jsonl")
    sensor = build_landing_sensor(str(landing), LandingPolicy(quiet_seconds=30), clock=clock)
    clock.now += 20
    with path.open("a") as fh:  # the writer appends again: its mtime is now
        fh.write(json.dumps(otlp_request(span(span_id="00f067aa0ba902b7"))) + "\n")
    os.utime(path, (clock.now, clock.now))
    clock.now += 20  # 40 s after the first write, 20 s after the last
    assert tick(sensor, instance, None).run_requests == []


def test_a_done_marker_makes_a_fresh_file_ready_at_once(landing, instance):
    one_span_file(landing / "a.jsonl")
    (landing / "a.jsonl.done").touch()
    sensor = build_landing_sensor(str(landing), LandingPolicy(quiet_seconds=3600))
    assert paths_of(tick(sensor, instance, None)) == [str(landing / "a.jsonl")]


def test_files_under_processed_and_failed_are_never_requested(landing, instance):
    aged(one_span_file(landing / "processed" / "a.jsonl"))
    aged(one_span_file(landing / "failed" / "b.jsonl"))
    aged(one_span_file(landing / "sub" / "processed" / "c.jsonl"))  # only the top-level ones are reserved
    assert paths_of(tick(build_landing_sensor(str(landing), QUIET0), instance, None)) == [
        str(landing / "sub" / "processed" / "c.jsonl")
    ]


# ---- retries ------------------------------------------------------------------------------------------------


def test_a_failed_run_is_retried_after_the_backoff_under_a_new_run_key(landing, instance, tmp_path):
    clock = Clock()
    aged(one_span_file(landing / "a.jsonl"))
    policy = LandingPolicy(quiet_seconds=30, retry_backoff_seconds=60, max_attempts=3)
    sensor = build_landing_sensor(str(landing), policy, clock=clock)
    first = tick(sensor, instance, None)
    assert not execute(first.run_requests[0], instance, down(tmp_path)).success

    too_soon = tick(sensor, instance, first.cursor)
    assert too_soon.run_requests == []
    assert "1 retry" in too_soon.skip_message
    clock.now += 61
    retry = tick(sensor, instance, too_soon.cursor)
    assert paths_of(retry) == [str(landing / "a.jsonl")]
    assert retry.run_requests[0].run_key != first.run_requests[0].run_key
    assert retry.run_requests[0].tags["obs_pipelines/attempt"] == "2"


def test_the_backoff_doubles_and_retries_stop_after_max_attempts_until_the_file_is_touched(
    landing, instance, tmp_path
):
    clock = Clock()
    path = aged(one_span_file(landing / "a.jsonl"))
    sensor = build_landing_sensor(
        str(landing), LandingPolicy(retry_backoff_seconds=60, max_attempts=3), clock=clock
    )
    result = tick(sensor, instance, None)
    attempts = 0
    for wait in (60, 120):
        attempts += 1
        assert not execute(result.run_requests[0], instance, down(tmp_path)).success
        cursor = tick(sensor, instance, result.cursor).cursor  # records the failure
        clock.now += wait - 1
        assert tick(sensor, instance, cursor).run_requests == [], f"retry before {wait} s"
        clock.now += 2
        result = tick(sensor, instance, cursor)
        assert len(result.run_requests) == 1
    assert not execute(result.run_requests[0], instance, down(tmp_path)).success
    gave_up = tick(sensor, instance, result.cursor)
    clock.now += 10_000
    later = tick(sensor, instance, gave_up.cursor)
    assert later.run_requests == [] and "1 gave up" in later.skip_message

    os.utime(path, (clock.now - 3600, clock.now - 3600))  # touched: a new round
    again = tick(sensor, instance, later.cursor)
    assert paths_of(again) == [str(path)]
    assert again.run_requests[0].tags["obs_pipelines/attempt"] == "4"


def test_a_run_that_succeeded_is_not_requested_again(landing, instance, store):
    aged(one_span_file(landing / "a.jsonl"))
    sensor = build_landing_sensor(str(landing), LandingPolicy(archive=False))
    first = tick(sensor, instance, None)
    assert execute(first.run_requests[0], instance, store).success
    clock_far = build_landing_sensor(str(landing), LandingPolicy(archive=False), clock=lambda: time.time() + 10**6)
    assert tick(clock_far, instance, tick(sensor, instance, first.cursor).cursor).run_requests == []


# ---- processed/ and failed/ (a real ingest into the store) --------------------------------------------------


def test_a_successful_ingest_moves_the_file_to_processed_keeping_its_subpath(landing, instance, store):
    path = aged(one_span_file(landing / "2026" / "01" / "a.jsonl"))
    (landing / "2026" / "01" / "a.jsonl.done").touch()
    first = tick(build_landing_sensor(str(landing), QUIET0), instance, None)
    assert execute(first.run_requests[0], instance, store).success
    assert not path.exists()
    assert (landing / "processed" / "2026" / "01" / "a.jsonl").is_file()
    assert (landing / "processed" / "2026" / "01" / "a.jsonl.done").is_file()
    assert len(span_rows(store.engine)) == 1


def test_a_name_clash_in_processed_keeps_both_files(landing, instance, store):
    one_span_file(landing / "processed" / "a.jsonl", span_id="00f067aa0ba902b7")
    aged(one_span_file(landing / "a.jsonl"))
    first = tick(build_landing_sensor(str(landing), QUIET0), instance, None)
    assert paths_of(first) == [str(landing / "a.jsonl")]
    assert execute(first.run_requests[0], instance, store).success
    assert sorted(p.name for p in (landing / "processed").iterdir()) == ["a.jsonl", "a~1.jsonl"]


def test_a_file_nothing_could_be_read_from_moves_to_failed_with_a_reason(landing, instance, store):
    bad = landing / "bad.jsonl"
    bad.write_text("this is not json\n{also not\n")
    first = tick(build_landing_sensor(str(landing), QUIET0), instance, None)
    assert execute(first.run_requests[0], instance, store).success
    assert not bad.exists()
    assert (landing / "failed" / "bad.jsonl").is_file()
    reason = (landing / "failed" / "bad.jsonl.reason.txt").read_text()
    assert "nothing could be read: 2 records rejected" in reason
    assert "line 1" in reason


def test_with_archiving_off_an_ingested_file_stays_in_place(landing, instance, store):
    path = one_span_file(landing / "a.jsonl")
    first = tick(build_landing_sensor(str(landing), LandingPolicy(quiet_seconds=0, archive=False)), instance, None)
    assert execute(first.run_requests[0], instance, store).success
    assert path.is_file() and not (landing / "processed").exists()


def test_a_copy_of_ingested_content_is_ingested_again_and_moved_too(landing, instance, store):
    aged(one_span_file(landing / "a.jsonl"))
    sensor = build_landing_sensor(str(landing), QUIET0)
    first = tick(sensor, instance, None)
    shutil.copy(landing / "a.jsonl", landing / "b.jsonl")
    assert execute(first.run_requests[0], instance, store).success
    second = tick(sensor, instance, first.cursor)  # sees the success, and b.jsonl still there
    assert paths_of(second) == [str(landing / "b.jsonl")]
    assert execute(second.run_requests[0], instance, store).success
    assert sorted(p.name for p in (landing / "processed").iterdir()) == ["a.jsonl", "b.jsonl"]
    assert list(landing.glob("*.jsonl")) == []


def test_a_failed_run_leaves_the_file_in_the_landing_directory(landing, instance, tmp_path):
    path = one_span_file(landing / "a.jsonl")
    first = tick(build_landing_sensor(str(landing), QUIET0), instance, None)
    assert not execute(first.run_requests[0], instance, broken_store(tmp_path)).success
    assert path.is_file()


# ---- settings -----------------------------------------------------------------------------------------------


def test_the_landing_policy_comes_from_the_settings():
    settings = Settings(
        landing_quiet_seconds=5, landing_archive=False, landing_max_attempts=7, landing_retry_backoff_seconds=9
    )
    assert LandingPolicy.from_settings(settings) == LandingPolicy(
        quiet_seconds=5, max_attempts=7, retry_backoff_seconds=9, archive=False
    )
    default = LandingPolicy.from_settings(Settings())
    assert (default.quiet_seconds, default.archive) == (30, True)


def test_without_a_policy_the_sensor_reads_the_landing_settings_from_the_config_file(
    landing, instance, tmp_path, monkeypatch
):
    config = tmp_path / "settings.yaml"
    config.write_text("landing_quiet_seconds: 0\nlanding_archive: false\n")
    monkeypatch.setenv("OBS_PIPELINES_CONFIG", str(config))
    one_span_file(landing / "a.jsonl")  # written just now: ready only because the quiet time is 0
    sensor = build_landing_sensor(str(landing))
    assert paths_of(tick(sensor, instance, None)) == [str(landing / "a.jsonl")]
    assert "processed/" not in sensor.description


def test_a_file_name_that_is_not_utf8_is_ingested_and_does_not_stop_the_other_files(landing, instance, store):
    # b"caf\xe9" is latin-1 for "café": a valid POSIX name that no UTF-8 text (tags, config, JSON) can hold as is
    odd = Path(os.fsdecode(bytes(landing) + b"/caf\xe9.jsonl"))
    one_span_file(odd, span_id="00000000000000a1")
    one_span_file(landing / "plain.jsonl", span_id="00000000000000a2")
    result = tick(build_landing_sensor(str(landing), QUIET0), instance, None)
    assert len(result.run_requests) == 2
    for request in result.run_requests:
        assert execute(request, instance, store).success
    with store.engine.connect() as conn:
        stored = {r[0] for r in conn.exec_driver_sql("SELECT span_id FROM spans")}
    assert stored == {"00000000000000a1", "00000000000000a2"}


def test_rejects_of_a_file_whose_name_is_not_utf8_are_stored_under_an_escaped_name(landing, instance, store):
    odd = Path(os.fsdecode(bytes(landing) + b"/bad\xff.jsonl"))
    odd.write_text("not json\n")
    (request,) = tick(build_landing_sensor(str(landing), QUIET0), instance, None).run_requests
    assert execute(request, instance, store).success
    with store.engine.connect() as conn:
        sources = [r[0] for r in conn.exec_driver_sql("SELECT source FROM ingest_rejects")]
    assert sources == [str(landing) + "/bad\\xff.jsonl"]
