"""Every command, option and positional argument of the ``scalefit`` CLI that users had stays.

`fixtures/cli_surface.json` was recorded from the released CLI; a new option may appear, none
may go or be renamed."""

import argparse
import json
from pathlib import Path

from scalefit.cli import build_parser

RECORDED = json.loads((Path(__file__).parent / "fixtures" / "cli_surface.json").read_text())


def surface(parser: argparse.ArgumentParser, path=()) -> dict:
    out = {" ".join(path): {
        "options": sorted(s for a in parser._actions for s in a.option_strings),
        "positionals": [a.dest for a in parser._actions
                        if not a.option_strings and not isinstance(a, argparse._SubParsersAction)]}}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out |= surface(sub, path + (name,))
    return out


def test_every_recorded_command_option_and_positional_remains():
    now = surface(build_parser())
    missing = {cmd: sorted(set(spec["options"]) - set(now.get(cmd, {}).get("options", ())))
               for cmd, spec in RECORDED.items()}
    assert set(RECORDED) <= set(now), sorted(set(RECORDED) - set(now))
    assert not any(missing.values()), {k: v for k, v in missing.items() if v}
    for cmd, spec in RECORDED.items():
        assert now[cmd]["positionals"] == spec["positionals"], cmd


def test_the_recording_covers_the_commands():
    assert {"check", "fit", "predict", "calibrate", "backtest", "compare", "suggest", "synth", "collect",
            "grid plan", "grid status", "plot law", "plot valleys", "plot weights"} <= set(RECORDED)
