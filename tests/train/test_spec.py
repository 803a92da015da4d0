"""Grid specs: expansion, ids, counts, and errors that name the field (no torch needed)."""
import json

import pytest

from scalefit.train.spec import SpecError, canonical_hash, count_params, load_spec

from runner_helpers import BASE, REPO


def test_expand_micro_grid_ids_are_hashes_of_canonical_config():
    spec = load_spec(REPO / "runners/grids/micro.toml")
    ids = [c.id for c in spec.cells]
    assert len(ids) == len(set(ids)) == 2 * (2 + 1)  # 2 sizes x (2 AdamW LRs + 1 AdamH LR)
    for c in spec.cells:
        assert c.id == canonical_hash(c.config)
        assert c.meta["n_tokens"] == c.config["steps"] * c.meta["tokens_per_step"]
        assert json.loads(json.dumps(c.as_dict())) == c.as_dict()  # JSON-clean
    assert {c.config["optimizer"] for c in spec.cells} == {"adamw", "adamh"}
    assert all(c.config["weight_decay"] == 0 for c in spec.cells if c.config["optimizer"] == "adamh")
    # same spec -> same ids; cadences are not part of the id
    again = load_spec(REPO / "runners/grids/micro.toml")
    assert [c.id for c in again.cells] == ids


def test_cpu_ladder_grid_shape():
    spec = load_spec(REPO / "runners/grids/cpu_ladder.toml")
    sizes = {c.meta["size"] for c in spec.cells}
    budgets = {c.meta["n_tokens"] for c in spec.cells if c.meta["size"] == "c48"}
    lrs = {c.config["lr"] for c in spec.cells if c.config["optimizer"] == "adamw"}
    assert len(sizes) >= 5 and len(budgets) >= 3 and len(lrs) >= 7
    ratios = sorted(lrs)
    assert all(abs(b / a - 2 ** 0.5) < 1e-3 for a, b in zip(ratios, ratios[1:]))  # half-octaves
    n = sorted({c.meta["n_params"] for c in spec.cells})
    assert 4e4 < n[0] and n[-1] < 1.1e6


def test_gpt2_ladder_spans_22m_to_707m():
    spec = load_spec(REPO / "runners/grids/gpt2_ladder.toml")
    n = sorted({c.meta["n_params"] for c in spec.cells})
    assert 21e6 < n[0] < 23e6 and 700e6 < n[-1] < 715e6


def test_tokens_per_param_budget(grid_file):
    spec = load_spec(grid_file(BASE.replace("absolute = [12800]", "per_param = [2]")))
    (c,) = spec.cells
    assert abs(c.meta["n_tokens"] - 2 * c.meta["n_params"]) <= c.meta["tokens_per_step"] / 2


def test_lr_range_is_log_spaced(grid_file):
    spec = load_spec(grid_file(BASE.replace("values = [3e-3]", "min = 1e-3\n    max = 8e-3\n    per_octave = 2")))
    lrs = sorted(c.config["lr"] for c in spec.cells)
    assert len(lrs) == 7 and lrs[0] == 1e-3 and lrs[-1] == 8e-3


@pytest.mark.parametrize("old,new,field", [
    ("values = [3e-3]", "values = [-1e-3]", "lr.values"),
    ("values = [3e-3]", "values = []", "lr"),
    ('optimizer = "adamw"', 'optimizer = "sgd"', "optimizer"),
    ('kind = "cosine"', 'kind = "linear"', "schedule.kind"),
    ("warmup = 5", "warmup = 500", "schedule.warmup"),
    ("batch_size = 8", "batch_size = 8.5", "batch_size"),
    ("batch_size = 8", "", "batch_size"),
    ("absolute = [12800]", "absolute = [12800]\n    per_param = [20]", "tokens"),
    ('sizes = ["u32"]', 'sizes = ["u999"]', "sizes"),
    ("log_every = 5", "log_evry = 5", "run.log_evry"),
    ("[data]", "[data]\n    kind = \"parquet\"", "data.kind"),
    ("weight_decay = 0.1", "weight_decay = -0.1", "weight_decay"),
])
def test_bad_spec_errors_name_the_field(grid_file, old, new, field):
    assert old in BASE
    path = grid_file(BASE.replace(old, new, 1))
    with pytest.raises(SpecError) as e:
        load_spec(path)
    msg = str(e.value)
    assert f"field '{field}'" in msg and str(path) in msg


def test_bad_toml_and_missing_ladder(tmp_path):
    p = tmp_path / "g.toml"
    p.write_text("ladder = [unclosed")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(p)
    p.write_text('ladder = "nonexistent_ladder"\nbatch_size = 1\n[tokens]\nabsolute=[1]\n[lr]\nvalues=[1e-3]\n')
    with pytest.raises(SpecError, match="field 'ladder'"):
        load_spec(p)


def test_count_params_matches_model():
    torch = pytest.importorskip("torch")
    from scalefit.train.model import GPT, GPTConfig

    for kw in [dict(d_model=32, n_layer=2, n_head=2, seq_len=16),
               dict(d_model=24, n_layer=3, n_head=3, seq_len=8, bias=True, tie_embeddings=False, qk_norm=True)]:
        m = GPT(GPTConfig(vocab_size=256, **kw))
        assert m.count_params() == count_params(vocab_size=256, **kw)
        assert m.count_params()[1] == sum(p.numel() for p in m.parameters())
    assert torch.is_tensor(next(m.parameters()))
