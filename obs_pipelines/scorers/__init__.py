"""The scorers library both eval phases use, the way autoevals is one: pure functions of an example (base.py),
one module per family, the registry by name (registry.py), the LLM judge's client and verdict reader, and the
project's one set of PII and credential detectors (pii.py, credentials.py). It imports no Dagster, no SQL layer
and no phase (obs_pipelines_tests/test_house_rules.py checks it)."""
