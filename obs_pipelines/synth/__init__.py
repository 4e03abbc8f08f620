"""Realistic synthetic traces of an LLM support assistant, with injectable incidents.

Public API in ``obs_pipelines.synth.generator``: ``Incident``, ``parse_incident``, ``generate_traces``,
``trace_to_otlp``, ``write_otlp_jsonl``. Modules: ``catalog`` (routes, models, error shapes),
``content`` (documents, questions, answers), ``incidents`` (incident parsing), ``otlp`` (rows -> OTLP/JSON).
"""
