"""Models: one file per model under one contract (:mod:`fave.models.base`)."""
