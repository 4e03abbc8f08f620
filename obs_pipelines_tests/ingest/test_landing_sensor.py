"""The landing-directory sensor launches one ingest run per new file content, never two."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest

from obs_pipelines.ingest.defs import build_landing_sensor


@pytest.fixture
def landing(tmp_path) -> Path:
    path = tmp_path / "landing"
    path.mkdir()
    return path


def tick(sensor, instance, cursor):
    context = dg.build_sensor_context(instance=instance, cursor=cursor)
    return sensor.evaluate_tick(context)


def test_new_file_gives_one_run_request_keyed_by_its_content_hash(landing, real_traces_dir):
    shutil.copy(real_traces_dir / "framework-traces.otlp.jsonl", landing / "a.jsonl")
    sensor = build_landing_sensor(str(landing))
    with dg.instance_for_test() as instance:
        result = tick(sensor, instance, None)
    assert len(result.run_requests) == 1
    request = result.run_requests[0]
    assert request.run_key.startswith("ingest:")
    assert request.run_config["ops"]["ingest_landed_file"]["config"]["path"] == str(landing / "a.jsonl")


def test_same_file_on_the_next_tick_gives_no_run_request(landing, real_traces_dir):
    shutil.copy(real_traces_dir / "framework-traces.otlp.jsonl", landing / "a.jsonl")
    sensor = build_landing_sensor(str(landing))
    with dg.instance_for_test() as instance:
        first = tick(sensor, instance, None)
        second = tick(sensor, instance, first.cursor)
    assert second.run_requests == []


def test_a_renamed_copy_of_ingested_content_gives_no_run_request(landing, real_traces_dir):
    shutil.copy(real_traces_dir / "framework-traces.otlp.jsonl", landing / "a.jsonl")
    sensor = build_landing_sensor(str(landing))
    with dg.instance_for_test() as instance:
        first = tick(sensor, instance, None)
        shutil.copy(landing / "a.jsonl", landing / "copy-of-a.jsonl")
        second = tick(sensor, instance, first.cursor)
    assert second.run_requests == []


def test_a_second_new_file_gives_exactly_one_more_run_request(landing, real_traces_dir):
    shutil.copy(real_traces_dir / "framework-traces.otlp.jsonl", landing / "a.jsonl")
    sensor = build_landing_sensor(str(landing))
    with dg.instance_for_test() as instance:
        first = tick(sensor, instance, None)
        (landing / "b.jsonl").write_text('{"resourceSpans": []}\n')
        second = tick(sensor, instance, first.cursor)
    assert [r.run_config["ops"]["ingest_landed_file"]["config"]["path"] for r in second.run_requests] == [
        str(landing / "b.jsonl")
    ]


def test_files_still_being_written_are_not_ingested(landing):
    (landing / "c.jsonl.part").write_text("{}\n")
    (landing / ".d.jsonl").write_text("{}\n")
    sensor = build_landing_sensor(str(landing))
    with dg.instance_for_test() as instance:
        assert tick(sensor, instance, None).run_requests == []
