"""Model prices (genai-prices, offline data) plus user overrides; vectorized cost computation."""

from obs_pipelines.pricing.prices import PriceMatch, PriceTable, compute_costs, load_prices

__all__ = ["PriceMatch", "PriceTable", "compute_costs", "load_prices"]
