import json

import pytest

from scalefit.model.config import ModelConfig, default_priors


def test_round_trip_and_hash():
    cfg = ModelConfig(axis="D", valley="quadratic", priors={"law_curvature_D": {"mu": 0.0, "sigma": 0.2}})
    back = ModelConfig.from_json(cfg.to_json())
    assert back == cfg
    assert back.hash == cfg.hash
    assert back.priors["law_curvature_D"]["sigma"] == 0.2
    # unspecified priors are filled from the defaults
    assert back.priors["law_slope_D"] == default_priors()["law_slope_D"]
    assert ModelConfig(axis="N").hash != cfg.hash


@pytest.mark.parametrize("field,value,needle", [
    ("axis", "X", "axis must be one of"),
    ("lr_kind", "peak", "lr_kind must be one of"),
    ("valley", "cubic", "valley must be one of"),
    ("law", "cubic", "law must be one of"),
    ("diverged", "drop", "diverged must be one of"),
    ("window_octaves", 0, "window_octaves must be > 0"),
    ("priors", {"bogus": {"sigma": 1}}, "unknown prior names"),
    ("discrepancy", "gp", "discrepancy must be one of"),
    ("asymmetry", "free", "asymmetry must be one of"),
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


@pytest.mark.parametrize("old", ["law_slope", "law_curvature"])
def test_prior_in_old_z_units_is_refused_with_the_new_names(old):
    with pytest.raises(ValueError, match=f"prior '{old}' is in the old standardized z units.*per e-fold"):
        ModelConfig(priors={old: {"mu": 0.0, "sigma": 0.5}})
    text = json.dumps({"axis": "N", "priors": {old: {"mu": 0.0, "sigma": 0.5}}})
    with pytest.raises(ValueError, match="old standardized z units"):
        ModelConfig.from_json(text)


def test_default_priors_cover_the_published_laws():
    """PUBLISHED_LAWS.md: N exponents -0.22 (Zhou), -0.62 (Marin AdamW), -0.71 (StepLaw), -0.81
    (Ludziejewski) and ~0 (AdamH/muP); D exponents +0.31 (StepLaw), -0.35 (Zhou), -0.125 (DeepSeek)."""
    pr = default_priors()
    for name, published in (("law_slope_N", (-0.22, -0.62, -0.713, -0.81, 0.0)),
                            ("law_slope_D", (0.307, -0.351, -0.125))):
        z = [(v - pr[name]["mu"]) / pr[name]["sigma"] for v in published]
        assert max(abs(v) for v in z) < 2.0, (name, z)
