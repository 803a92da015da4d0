"""The affine maps between raw units (ln LR, loss, ln N, ln D, ln B) and the model's standardized
units, saved in every fit file."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Standardization:
    """Affine maps between raw units and the model's standardized units (saved in the fit)."""

    x_center: float  # ln LR subtracted from x
    y_center: float
    y_scale: float
    log_n_mean: float
    log_n_sd: float
    log_d_mean: float
    log_d_sd: float
    log_b_mean: float = 0.0  # batch size (tokens/step); sd 0 when the fitted cells share one
    log_b_sd: float = 0.0

    def center_scale(self, axis: str) -> tuple[float, float]:
        return {"N": (self.log_n_mean, self.log_n_sd), "D": (self.log_d_mean, self.log_d_sd),
                "B": (self.log_b_mean, self.log_b_sd)}[axis]

    def z(self, axis: str, value) -> np.ndarray:
        """Standardized log covariate; 0 when the table does not vary along the axis."""
        mean, sd = self.center_scale(axis)
        value = np.asarray(value, dtype=float)
        return (np.log(value) - mean) / sd if sd > 0 else np.zeros_like(value)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Standardization":
        return cls(**json.loads(text))
