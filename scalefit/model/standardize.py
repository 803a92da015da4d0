"""The affine maps between raw units (ln LR, loss, ln N, ln D, ln B) and the model's standardized
units, saved in every fit file (see the model page, docs/model.md, "Standardization")."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["Standardization"]


@dataclass(frozen=True)
class Standardization:
    """Affine maps between raw units and the model's standardized units (saved in the fit).

    x = ln LR - x_center; y = (loss - y_center) / y_scale; z_a = (ln a - mean) / sd per law axis.
    Standardizing is a sampling convenience: priors are stated in natural units, so the
    posterior in natural units does not depend on it.

    Attributes
    ----------
    x_center : float
        ln LR subtracted from x: the mean best ln LR over the fitted cells.
    y_center : float
        Loss subtracted from y: the median best loss.
    y_scale : float
        Loss divisor of y: the median within-cell loss range.
    log_n_mean, log_n_sd : float
        Mean and sd of ln N over the fitted cells (sd 0 when they share one N).
    log_d_mean, log_d_sd : float
        The same for ln D.
    log_b_mean, log_b_sd : float
        The same for ln batch size (tokens/step); both 0 unless the law has a batch-size term.
    """

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
        """Mean and sd of ln value along one law axis.

        Parameters
        ----------
        axis : {"N", "D", "B"}
            The law axis.

        Returns
        -------
        tuple of float
            (mean, sd) of the axis's log values over the fitted cells.
        """
        return {"N": (self.log_n_mean, self.log_n_sd), "D": (self.log_d_mean, self.log_d_sd),
                "B": (self.log_b_mean, self.log_b_sd)}[axis]

    def z(self, axis: str, value) -> np.ndarray:
        """Standardized log covariate; 0 when the table does not vary along the axis.

        Parameters
        ----------
        axis : {"N", "D", "B"}
            The law axis.
        value : array_like
            Raw values (N, D or batch size), not their logs.

        Returns
        -------
        numpy.ndarray
            (ln value - mean) / sd, or zeros when sd is 0.
        """
        mean, sd = self.center_scale(axis)
        value = np.asarray(value, dtype=float)
        return (np.log(value) - mean) / sd if sd > 0 else np.zeros_like(value)

    def to_json(self) -> str:
        """The maps as JSON, as fit files store them.

        Returns
        -------
        str
            A JSON object of the fields.
        """
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Standardization":
        """The maps that `to_json` wrote.

        Parameters
        ----------
        text : str
            A JSON object of the fields.

        Returns
        -------
        Standardization
            The maps.
        """
        return cls(**json.loads(text))
