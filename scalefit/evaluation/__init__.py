"""Floor 5 of the pipeline: is the fit right?

spec -> runner -> result files -> runs table -> model -> inference -> fit -> **evaluation**/design
-> report -> CLI. Backtests against the user's own grid: `leave_largest_out` hides the largest
scale and predicts it (`scalefit.evaluation.backtest`); `scalefit.evaluation.calibrate.calibrate`
runs rolling backtests along every chain of cells and scores the model against the two-stage
point fit and a cell bootstrap; `scalefit.evaluation.compare.compare` fits every
(nominal/effective LR) x (N/D/ND) variant side by side with backtests and PSIS-LOO.

`calibrate` and `compare` are not re-exported here: those names would shadow their modules.
"""

from scalefit.evaluation.backtest import Backtest, leave_largest_out
from scalefit.evaluation.calibrate import Calibration, format_summary
from scalefit.evaluation.compare import Comparison

__all__ = ["Backtest", "leave_largest_out", "Calibration", "Comparison", "format_summary"]
