"""Grid specs: expansion, ids, counts, and errors that name the field (no torch needed)."""
import json
import re

import pytest

from scalefit.grids.spec import SpecError, canonical_hash, count_params, load_spec

from runner_helpers import BASE, REPO


def test_expand_micro_grid_ids_are_hashes_of_canonical_config():
    spec = load_spec(REPO / "runners/grids/micro.toml")
    ids = [c.id for c in spec.runs]
    assert len(ids) == len(set(ids)) == 2 * (2 + 1)  # 2 sizes x (2 AdamW LRs + 1 AdamH LR)
    for c in spec.runs:
        assert c.id == canonical_hash(c.config)
        assert c.meta["n_tokens"] == c.config["steps"] * c.meta["tokens_per_step"]
        assert json.loads(json.dumps(c.as_dict())) == c.as_dict()  # JSON-clean
    assert {c.config["optimizer"] for c in spec.runs} == {"adamw", "adamh"}
    assert all(c.config["weight_decay"] == 0 for c in spec.runs if c.config["optimizer"] == "adamh")
    # same spec -> same ids; cadences are not part of the id
    again = load_spec(REPO / "runners/grids/micro.toml")
    assert [c.id for c in again.runs] == ids


def test_cpu_ladder_grid_shape():
    spec = load_spec(REPO / "runners/grids/cpu_ladder.toml")
    sizes = {c.meta["size"] for c in spec.runs}
    budgets = {c.meta["n_tokens"] for c in spec.runs if c.meta["size"] == "c48"}
    lrs = {c.config["lr"] for c in spec.runs if c.config["optimizer"] == "adamw"}
    assert len(sizes) >= 5 and len(budgets) >= 3 and len(lrs) >= 7
    ratios = sorted(lrs)
    assert all(abs(b / a - 2 ** 0.5) < 1e-3 for a, b in zip(ratios, ratios[1:]))  # half-octaves
    n = sorted({c.meta["n_params"] for c in spec.runs})
    assert 4e4 < n[0] and n[-1] < 1.1e6


def test_gpt2_ladder_spans_22m_to_707m():
    spec = load_spec(REPO / "runners/grids/gpt2_ladder.toml")
    n = sorted({c.meta["n_params"] for c in spec.runs})
    assert 21e6 < n[0] < 23e6 and 700e6 < n[-1] < 715e6


def test_tokens_per_param_budget(grid_file):
    spec = load_spec(grid_file(BASE.replace("absolute = [12800]", "per_param = [2]")))
    (c,) = spec.runs
    assert abs(c.meta["n_tokens"] - 2 * c.meta["n_params"]) <= c.meta["tokens_per_step"] / 2


def test_lr_range_is_log_spaced(grid_file):
    spec = load_spec(grid_file(BASE.replace("values = [3e-3]", "min = 1e-3\n    max = 8e-3\n    per_octave = 2")))
    lrs = sorted(c.config["lr"] for c in spec.runs)
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
    # nonsense that used to pass silently
    ('sizes = ["u32"]', 'sizes = ["u32"]\n    seeds = []', "seeds"),
    ('sizes = ["u32"]', 'sizes = []', "sizes"),
    ("weight_decay = 0.1", "weight_decay = 400.0", "weight_decay"),  # lr x wd = 1.2: W flips sign
    ("log_every = 5", "log_every = 5\n    lease_s = 20", "run.lease_s"),  # below 3 heartbeats
    ("log_every = 5", "log_every = 5\n    divergence_factor = 0.5", "run.divergence_factor"),
    ("values = [3e-3]", "k = [0, 3]", "lr.k"),  # lattice index without [lr_lattice]
    ("[data]", "[optim]\n    decay_embeddings = \"no\"\n    [data]", "optim.decay_embeddings"),
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
    from scalefit.train.gpt import GPT, GPTConfig

    for kw in [dict(d_model=32, n_layer=2, n_head=2, seq_len=16),
               dict(d_model=24, n_layer=3, n_head=3, seq_len=8, bias=True, tie_embeddings=False, qk_norm=True)]:
        m = GPT(GPTConfig(vocab_size=256, **kw))
        assert m.count_params() == count_params(vocab_size=256, **kw)
        assert m.count_params()[1] == sum(p.numel() for p in m.parameters())
    assert torch.is_tensor(next(m.parameters()))


SWEEPS = """
    name = "sw"
    batch_size = 8
    seq_len = 32
    optimizer = "adamw"
    weight_decay = 0.1
    tokens = { absolute = [12800, 25600] }
    [lr_lattice]
    base = 1e-3
    per_octave = 2
    [schedule]
    warmup = 5
    [[sweep]]
    name = "main"
    sizes = ["u16", "u32"]
    lr = { k = [0, 2] }
    [[sweep.window]]
    size = "u32"
    tokens = 25600
    k = [1, 4]
    [[sweep]]
    name = "repeats"
    priority = 5
    sizes = ["u16"]
    seeds = [0, 1]
    tokens = { absolute = [12800] }
    lr = { k = [1, 3] }
"""


def test_sweep_blocks_union_windows_and_priority(grid_file):
    spec = load_spec(grid_file(SWEEPS))
    key = lambda c: (c.meta["size"], c.meta["n_tokens"] // 256, c.config["seed"], c.meta["lr_k"])  # noqa: E731
    got = sorted(map(key, spec.runs))
    main = [(s, st, 0, k) for s in ("u16", "u32") for st in (50, 100) for k in range(3)
            if (s, st) != ("u32", 100)] + [("u32", 100, 0, k) for k in range(1, 5)]
    repeats = [("u16", 50, seed, k) for seed in (0, 1) for k in range(1, 4)]
    assert got == sorted(set(main) | set(repeats))  # u16 @ 12800, seed 0, k=1,2 listed twice: once here
    assert len({c.id for c in spec.runs}) == len(spec.runs)
    for c in spec.runs:
        assert c.config["lr"] == float(f"{1e-3 * 2 ** (c.meta['lr_k'] / 2):.4g}")
    shared = [c for c in spec.runs if key(c)[0] == "u16" and key(c)[1] == 50 and key(c)[2] == 0 and key(c)[3] in (1, 2)]
    assert {c.meta["sweep"] for c in shared} == {"repeats"}  # the higher priority owns shared runs
    order = spec.ordered()
    assert [c.meta["priority"] for c in order] == sorted((c.meta["priority"] for c in order), reverse=True)


def test_moving_a_window_keeps_the_ids_of_runs_it_still_covers(grid_file):
    a = {c.meta["lr_k"]: c.id for c in load_spec(grid_file(SWEEPS)).runs
         if c.meta["sweep"] == "main" and c.meta["size"] == "u32" and c.meta["n_tokens"] == 25600}
    b = {c.meta["lr_k"]: c.id for c in load_spec(grid_file(SWEEPS.replace("k = [1, 4]", "k = [3, 6]"))).runs
         if c.meta["sweep"] == "main" and c.meta["size"] == "u32" and c.meta["n_tokens"] == 25600}
    assert sorted(a) == [1, 2, 3, 4] and sorted(b) == [3, 4, 5, 6]
    assert a[3] == b[3] and a[4] == b[4]


@pytest.mark.parametrize("old,new,field", [
    ('size = "u32"\n    tokens = 25600', 'size = "u64"\n    tokens = 25600', "sweep[0].window[0].size"),
    ("tokens = 25600", "tokens = 99", "sweep[0].window[0].tokens"),
    ("lr = { k = [0, 2] }", "lr = { k = [2, 0] }", "sweep[0].lr.k"),
    ('name = "repeats"', 'name = "main"', "sweep[1].name"),
    ("seeds = [0, 1]", "seeds = []", "sweep[1].seeds"),
    ("priority = 5", "priority = 5\n    extend = { max = 2, clif = 0.1 }", "sweep[1].extend.clif"),
    ("priority = 5", "priority = 5\n    lr_window = 3", "sweep[1].lr_window"),
])
def test_bad_sweep_blocks_name_the_field(grid_file, old, new, field):
    assert old in SWEEPS
    path = grid_file(SWEEPS.replace(old, new, 1))
    with pytest.raises(SpecError, match=re.escape(f"field '{field}'")):
        load_spec(path)


def test_cpu_ladder_v1_spec_reproduces_every_shipped_run_id():
    spec = load_spec(REPO / "runners/grids/cpu_ladder_v1.toml")
    shipped = json.loads((REPO / "data/cpu_ladder_v1/grid.json").read_text())["cells"]
    assert sorted(c.id for c in spec.runs) == sorted(shipped) and len(shipped) == 198
    for c in spec.runs:  # and the configs themselves, byte for byte
        on_disk = json.loads((REPO / "data/cpu_ladder_v1/cells" / c.id / "config.json").read_text())
        assert on_disk["config"] == c.config


def test_decay_embeddings_default_keeps_ids_and_false_changes_only_adamw(grid_file):
    base = BASE.replace('optimizer = "adamw"', 'optimizer = ["adamw", "adamh"]')
    omitted = load_spec(grid_file(base))
    explicit = load_spec(grid_file(base.replace("[data]", "[optim]\n    decay_embeddings = true\n    [data]")))
    off = load_spec(grid_file(base.replace("[data]", "[optim]\n    decay_embeddings = false\n    [data]")))
    ids = lambda s: {c.config["optimizer"]: c.id for c in s.runs}  # noqa: E731
    assert ids(omitted) == ids(explicit)
    assert ids(off)["adamh"] == ids(omitted)["adamh"] and ids(off)["adamw"] != ids(omitted)["adamw"]
    torch = pytest.importorskip("torch")
    from scalefit.train.gpt import GPT, GPTConfig
    from scalefit.train.optim import build_optimizer

    (aw_off,) = [c for c in off.runs if c.config["optimizer"] == "adamw"]
    (aw_on,) = [c for c in omitted.runs if c.config["optimizer"] == "adamw"]
    m = GPT(GPTConfig(vocab_size=256, **aw_on.config["model"]))
    decayed = lambda cfg: {id(p) for g in build_optimizer(m, cfg).param_groups  # noqa: E731
                           if g["weight_decay"] > 0 for p in g["params"]}
    emb = {id(m.wte.weight), id(m.wpe.weight)}
    hidden = {id(p) for _, p in m.hidden_matrices()}
    assert decayed(aw_on.config) == hidden | emb and decayed(aw_off.config) == hidden
    assert torch.is_tensor(m.wte.weight)
