"""Support package for the Batch Normalization from Scratch course: what the notebooks import.

Published to students on day one (data loading, plots, layers, nets, the solver, gradient
checking, visible-test helpers in ``course.testing``), so it holds no solution of any graded
exercise. May import numpy, matplotlib, scikit-learn and tqdm; never anything from
``autograder`` (the instructor's hidden half), which ``tests/test_architecture.py`` enforces.
"""
