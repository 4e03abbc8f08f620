import functools
import json
import re
from datetime import datetime

import orjson
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from obs_pipelines.synth.generator import generate_traces, parse_incident, trace_to_otlp, write_otlp_jsonl

from .helpers import otlp_to_rows

START = datetime(2026, 11, 2, 14)
ANY_VALUE_KINDS = {"stringValue", "intValue", "doubleValue", "boolValue", "arrayValue"}
NANOS = re.compile(r"^\d{19}$")


@functools.cache
def _some_traces():
    incidents = [parse_incident("provider_outage@2026-11-02T14:05+5m"), parse_incident("tool_loop@2026-11-02T14:10+5m")]
    return list(generate_traces(START, 0.25, 0.5, 9, incidents))


def test_jsonl_lines_are_otlp_requests_with_the_documented_shape(tmp_path):
    summary = write_otlp_jsonl(tmp_path / "out" / "t.jsonl", START, 0.2, 0.5, seed=3)
    lines = summary.path.read_bytes().splitlines()
    assert len(lines) == summary.traces and summary.traces > 0
    n_spans = 0
    for line in lines:
        req = orjson.loads(line)
        assert list(req) == ["resourceSpans"]
        (rs,) = req["resourceSpans"]
        res = {a["key"]: a["value"] for a in rs["resource"]["attributes"]}
        assert res["service.name"] == {"stringValue": "support-assistant"}
        assert res["deployment.environment.name"] == {"stringValue": "production"}
        (ss,) = rs["scopeSpans"]
        assert len({s["traceId"] for s in ss["spans"]}) == 1
        for s in ss["spans"]:
            n_spans += 1
            assert re.fullmatch(r"[0-9a-f]{32}", s["traceId"]) and re.fullmatch(r"[0-9a-f]{16}", s["spanId"])
            assert isinstance(s["kind"], int) and s["kind"] in (1, 2, 3)
            assert NANOS.match(s["startTimeUnixNano"]) and NANOS.match(s["endTimeUnixNano"])
            assert s["status"]["code"] in (1, 2)
            for a in s["attributes"]:
                (kind, value), = a["value"].items()
                assert kind in ANY_VALUE_KINDS
                if kind == "intValue":
                    assert isinstance(value, str) and int(value) == int(value)
                if kind == "doubleValue":
                    assert isinstance(value, float)
    assert n_spans == summary.spans


def test_otlp_parses_as_an_export_trace_service_request():
    for trace in _some_traces()[:50]:
        msg = json_format.Parse(json.dumps(trace_to_otlp(trace)), ExportTraceServiceRequest())
        assert len(msg.resource_spans[0].scope_spans[0].spans) == len(trace)


def test_trace_to_otlp_is_plain_json():
    trace = _some_traces()[0]
    req = trace_to_otlp(trace)
    assert json.loads(json.dumps(req)) == req


def test_ingesting_the_otlp_gives_back_the_yielded_rows():
    for trace in _some_traces():
        assert otlp_to_rows(trace_to_otlp(trace)) == trace


def test_errors_carry_status_error_type_and_an_exception_event():
    traces = _some_traces()
    failed = [s for t in traces for s in trace_to_otlp(t)["resourceSpans"][0]["scopeSpans"][0]["spans"] if s["status"]["code"] == 2]
    assert failed
    for s in failed:
        attrs = {a["key"]: a["value"] for a in s["attributes"]}
        (event,) = s["events"]
        ev = {a["key"]: a["value"]["stringValue"] for a in event["attributes"]}
        assert event["name"] == "exception" and event["timeUnixNano"] == s["endTimeUnixNano"]
        assert ev["exception.type"] == attrs["error.type"]["stringValue"]
        assert ev["exception.message"] == s["status"]["message"]


def test_spans_use_the_instrumentation_attribute_keys():
    traces = _some_traces()
    keys_by_kind: dict[str, set] = {}
    for t in traces:
        for s in trace_to_otlp(t)["resourceSpans"][0]["scopeSpans"][0]["spans"]:
            attrs = {a["key"] for a in s["attributes"]}
            kind = next(a["value"]["stringValue"] for a in s["attributes"] if a["key"] == "openinference.span.kind")
            keys_by_kind.setdefault(kind, set()).update(attrs)
            if kind == "LLM" and s["status"]["code"] == 1:
                assert {
                    "gen_ai.operation.name",
                    "gen_ai.request.model",
                    "gen_ai.response.model",
                    "gen_ai.provider.name",
                    "gen_ai.usage.input_tokens",
                    "gen_ai.usage.output_tokens",
                    "gen_ai.usage.cache_read.input_tokens",
                    "langfuse.observation.prompt.name",
                    "langfuse.observation.prompt.version",
                    "input.value",
                    "output.value",
                } <= attrs
            if s.get("parentSpanId") is None:
                assert {"app.route", "user.id", "session.id", "input.value"} <= attrs
    assert {"retrieval.documents.0.document.id", "retrieval.documents.0.document.content", "retrieval.documents.0.document.score"} <= keys_by_kind["RETRIEVER"]
    assert {"reranker.output_documents.0.document.id", "reranker.output_documents.0.document.score"} <= keys_by_kind["RERANKER"]
    assert {"tool.name", "gen_ai.tool.name", "gen_ai.tool.call.id", "input.value", "output.value"} <= keys_by_kind["TOOL"]
    assert "gen_ai.agent.name" in keys_by_kind["AGENT"]
    assert "synth.incident" in set().union(*keys_by_kind.values())
    assert set(keys_by_kind) == {"CHAIN", "EMBEDDING", "RETRIEVER", "RERANKER", "LLM", "GUARDRAIL", "AGENT", "TOOL"}


def test_written_lines_are_the_otlp_of_the_generated_traces(tmp_path):
    incidents = [parse_incident("retrieval_miss@2026-11-02T14:02+3m")]
    summary = write_otlp_jsonl(tmp_path / "t.jsonl", START, 0.1, 0.5, 4, incidents)
    lines = summary.path.read_bytes().splitlines()
    traces = list(generate_traces(START, 0.1, 0.5, 4, incidents))
    assert [orjson.loads(line) for line in lines] == [trace_to_otlp(t) for t in traces]
