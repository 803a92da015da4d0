import json

import pytest

from scalefit.config import ModelConfig, default_priors


def test_round_trip_and_hash():
    cfg = ModelConfig(axis="D", valley="quadratic", priors={"law_curvature": {"mu": 0.0, "sigma": 0.2}})
    back = ModelConfig.from_json(cfg.to_json())
    assert back == cfg
    assert back.hash == cfg.hash
    assert back.priors["law_curvature"]["sigma"] == 0.2
    # unspecified priors are filled from the defaults
    assert back.priors["law_slope"] == default_priors()["law_slope"]
    assert ModelConfig(axis="N").hash != cfg.hash


@pytest.mark.parametrize("field,value,needle", [
    ("axis", "X", "axis must be one of"),
    ("lr_kind", "peak", "lr_kind must be one of"),
    ("valley", "cubic", "valley must be one of"),
    ("law", "cubic", "law must be one of"),
    ("diverged", "drop", "diverged must be one of"),
    ("window_octaves", 0, "window_octaves must be > 0"),
    ("priors", {"bogus": {"sigma": 1}}, "unknown prior names"),
])
def test_bad_settings_are_named(field, value, needle):
    with pytest.raises(ValueError, match=needle):
        ModelConfig(**{field: value})


def test_unknown_json_key():
    text = json.dumps({"axis": "N", "colour": "red"})
    with pytest.raises(ValueError, match="unknown model config keys"):
        ModelConfig.from_json(text)


def test_axes():
    assert ModelConfig(axis="ND").axes == ("N", "D")
    assert ModelConfig(axis="D").axes == ("D",)
