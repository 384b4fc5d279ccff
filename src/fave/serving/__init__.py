"""Serving: a recommender loaded from a run directory."""
