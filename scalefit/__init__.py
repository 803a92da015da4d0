"""scalefit: credible intervals for the optimal learning rate at a target scale."""

__version__ = "0.1.0"
