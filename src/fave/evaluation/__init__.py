"""Evaluation: metrics as pure functions and the one full-ranking evaluator."""
