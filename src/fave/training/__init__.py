"""Training: the model-agnostic trainer, checkpoints and the run orchestration."""
