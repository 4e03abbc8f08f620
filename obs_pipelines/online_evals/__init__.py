"""Phase 3, online evals: a scorer library, every production response scored, score rollups."""
