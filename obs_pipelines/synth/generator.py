"""Realistic traces of an LLM support assistant, with injectable incidents.

``generate_traces`` yields each trace as the span rows of the raw ``spans`` contract (what a correct
ingest produces from the OTLP that ``trace_to_otlp`` writes for it); ``write_otlp_jsonl`` writes one
OTLP/JSON ExportTraceServiceRequest per line.

The app ("support-assistant") serves four routes:

- ``rag_qa``     POST /chat/answer: validate_input -> embeddings -> retrieve_docs -> rerank -> chat -> postprocess_answer
                 -> output_guardrail
- ``agent_tools`` POST /agent/run: invoke_agent -> (chat plan -> execute_tool)* -> chat final
- ``summarize``  POST /docs/summarize: validate_input -> chat (streamed, long input) -> output_guardrail
- ``classify``   POST /tickets/classify: chat (small model)

Randomness: one master stream drives arrivals, routes and users (so sessions do not depend on incidents);
each trace draws from its own stream seeded from the master, so an incident changes only the traces
that start inside its window and the rest of the output stays byte-identical.

This module is the public face of the generator; the parts live in `traffic` (arrivals, users, sessions),
`routes` and `steps` (what one request does), `trace_builder` (span rows, failures, incident effects) and
`writer` (OTLP/JSON lines, in-process or by forked workers).
"""

from __future__ import annotations

from obs_pipelines.synth.incidents import INCIDENT_NAMES, Incident, parse_duration, parse_incident
from obs_pipelines.synth.otlp import encode_trace, trace_to_otlp
from obs_pipelines.synth.traffic import diurnal_factor, generate_traces
from obs_pipelines.synth.writer import GenerateSummary, write_otlp_jsonl

__all__ = [
    "INCIDENT_NAMES",
    "GenerateSummary",
    "Incident",
    "diurnal_factor",
    "encode_trace",
    "generate_traces",
    "parse_duration",
    "parse_incident",
    "trace_to_otlp",
    "write_otlp_jsonl",
]
