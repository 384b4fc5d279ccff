"""The paper's figures as commands: inference trajectories (Fig. 3) and prior distributions (Fig. 4).

Each figure is a picture (t-SNE of l2-normalised vectors, :mod:`fave.figures.geometry`) plus
the number it stands for (distances to the target item over all test users), written as
PNG + JSON + Markdown (:mod:`fave.figures.output`). Needs the ``plot`` extra
(matplotlib, scikit-learn).
"""
