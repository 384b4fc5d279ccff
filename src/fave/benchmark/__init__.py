"""Efficiency benchmark (the paper's Table 3) and accuracy versus sampling steps.

- :func:`fave.benchmark.bench.run_bench`: parameters, FLOPs per user, latency at batch 1,
  throughput, whole-test-set wall time and peak tensor memory for a set of models, timed
  round-robin so drift hits every model alike; :func:`fave.benchmark.report.render_markdown`.
- :func:`fave.benchmark.steps.run_steps`: test accuracy of a multi-step model as a function
  of its sampling steps, beside FAVE's one step.
"""
