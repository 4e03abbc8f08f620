"""Phase 4, offline evals: regression datasets curated from production (versioned by content hash),
experiments tied to git commits, comparison and a CI gate that tells a real regression from noise."""
