"""Phase 3, online evals: every production response scored with the scorers library (obs_pipelines/scorers),
score rollups."""
