"""Floor 6 of the pipeline: reports.

spec -> runner -> result files -> runs table -> model -> inference -> fit -> evaluation/design
-> **report** -> CLI. `scalefit.report.text` formats what the CLI prints (check, fit, predict,
backtest and compare reports); its functions are re-exported here. `scalefit.report.plots` draws
figures (loss valleys, the law with its new-cell fan, weight-norm trajectories); it needs
matplotlib, an optional dependency, so import it explicitly: ``from scalefit.report import plots``.
"""

from scalefit.report.text import (
    SYNTHETIC_BANNER, backtest_report, cells_table, check_report, comparison_report, fit_report, is_synthetic,
    not_converged_warning, prediction_report)

__all__ = ["check_report", "fit_report", "prediction_report", "backtest_report", "comparison_report",
           "cells_table", "is_synthetic", "not_converged_warning", "SYNTHETIC_BANNER"]
