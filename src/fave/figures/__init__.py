"""The paper's figures as commands: inference trajectories (Fig. 3), prior distributions (Fig. 4)
and hyperparameter sensitivity (Fig. 5).

Figures 3 and 4 are a picture (t-SNE of l2-normalised vectors, :mod:`fave.figures.geometry`) plus
the number it stands for (distances to the target item over all test users); Figure 5 plots the
metrics finished runs saved (:mod:`fave.figures.sensitivity`). Each is written as PNG + JSON +
Markdown (:mod:`fave.figures.output`). Needs the ``plot`` extra (matplotlib, scikit-learn).
"""
