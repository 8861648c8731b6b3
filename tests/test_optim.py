"""Optimizers and learning-rate schedulers: PyTorch parity, state_dict round trips, convergence."""
import copy

import numpy as np
import pytest

from tinygrad_edu import optim
from tinygrad_edu.optim import lr_scheduler
from tinygrad_edu.tensor import Tensor

SHAPES = [(3, 4), (5,), (2, 2, 2)]

# (optimizer name, keyword arguments): each hyperparameter path at least once
OPTIMIZER_CASES = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.9}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.5, "maximize": True}),
    ("Adam", {"lr": 0.01}),
    ("Adam", {"lr": 0.01, "betas": (0.8, 0.9), "weight_decay": 0.1}),
    ("Adam", {"lr": 0.01, "amsgrad": True, "maximize": True}),
    ("AdamW", {"lr": 0.01}),
    ("AdamW", {"lr": 0.02, "weight_decay": 0.1, "amsgrad": True}),
    ("RMSprop", {"lr": 0.01}),
    ("RMSprop", {"lr": 0.01, "alpha": 0.9, "momentum": 0.9, "weight_decay": 0.05}),
    ("RMSprop", {"lr": 0.01, "centered": True}),
    ("RMSprop", {"lr": 0.01, "centered": True, "momentum": 0.5, "eps": 1e-4}),
    ("Adagrad", {"lr": 0.1}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.05, "initial_accumulator_value": 0.1,
                 "weight_decay": 0.01}),
    ("Adadelta", {}),
    ("Adadelta", {"lr": 0.5, "rho": 0.8, "eps": 1e-4, "weight_decay": 0.1}),
]
CASE_IDS = [f"{name}-{'-'.join(kwargs) or 'default'}" for name, kwargs in OPTIMIZER_CASES]


def initial_arrays(dtype=np.float64) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.standard_normal(shape).astype(dtype) for shape in SHAPES]


def pseudo_grad(x: np.ndarray, i: int) -> np.ndarray:
    """A bounded, nonlinear, deterministic gradient field, different per parameter.

    Bounded so that maximize=True (gradient ascent) drifts instead of overflowing."""
    return (i + 1) * np.tanh(x - 0.5) + 0.1 * np.sin(3 * x)


def make_params(arrays) -> list[Tensor]:
    return [Tensor(a.copy(), dtype=a.dtype, requires_grad=True) for a in arrays]


def run_ours(opt, params, steps: int) -> None:
    for _ in range(steps):
        for i, p in enumerate(params):
            p.grad = Tensor(pseudo_grad(p.array, i), dtype=p.dtype)
        opt.step()


def ours_after(name: str, kwargs: dict, steps: int, dtype=np.float64) -> list[np.ndarray]:
    params = make_params(initial_arrays(dtype))
    run_ours(getattr(optim, name)(params, **kwargs), params, steps)
    return [p.array for p in params]


def torch_after(torch, name: str, kwargs: dict, steps: int, dtype=np.float64) -> list[np.ndarray]:
    params = [torch.tensor(a, requires_grad=True) for a in initial_arrays(dtype)]
    opt = getattr(torch.optim, name)(params, **kwargs)
    for _ in range(steps):
        for i, p in enumerate(params):
            p.grad = torch.from_numpy(pseudo_grad(p.detach().numpy(), i))
        opt.step()
    return [p.detach().numpy() for p in params]


# ---------------------------------------------------------------- optimizers vs PyTorch
@pytest.mark.parametrize("name,kwargs", OPTIMIZER_CASES, ids=CASE_IDS)
def test_matches_torch(name, kwargs):
    torch = pytest.importorskip("torch")
    for ours, theirs in zip(ours_after(name, kwargs, 20), torch_after(torch, name, kwargs, 20)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-10)


def test_torch_comparison_catches_a_wrong_hyperparameter():
    torch = pytest.importorskip("torch")
    ours = ours_after("SGD", {"lr": 0.05, "momentum": 0.9}, 20)
    theirs = torch_after(torch, "SGD", {"lr": 0.05, "momentum": 0.89}, 20)
    assert not all(np.allclose(a, b, rtol=1e-10, atol=1e-10) for a, b in zip(ours, theirs))


@pytest.mark.parametrize("name,kwargs", OPTIMIZER_CASES[1::3], ids=CASE_IDS[1::3])
def test_float32_matches_torch(name, kwargs):
    torch = pytest.importorskip("torch")
    ours = ours_after(name, kwargs, 20, np.float32)
    theirs = torch_after(torch, name, kwargs, 20, np.float32)
    for a, b in zip(ours, theirs):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_param_groups_match_torch():
    torch = pytest.importorskip("torch")
    arrays = initial_arrays()
    params = make_params(arrays)
    opt = optim.SGD([{"params": params[:2]}, {"params": params[2:], "lr": 0.01, "nesterov": True}],
                    lr=0.1, momentum=0.9)
    run_ours(opt, params, 10)
    tparams = [torch.tensor(a, requires_grad=True) for a in arrays]
    topt = torch.optim.SGD([{"params": tparams[:2]},
                            {"params": tparams[2:], "lr": 0.01, "nesterov": True}],
                           lr=0.1, momentum=0.9)
    for _ in range(10):
        for i, p in enumerate(tparams):
            p.grad = torch.from_numpy(pseudo_grad(p.detach().numpy(), i))
        topt.step()
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.array, tp.detach().numpy(), rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------- optimizers without torch
@pytest.mark.parametrize("name,kwargs", OPTIMIZER_CASES, ids=CASE_IDS)
def test_state_dict_round_trip(name, kwargs):
    params = make_params(initial_arrays())
    opt = getattr(optim, name)(params, **kwargs)
    run_ours(opt, params, 5)
    saved = opt.state_dict()
    run_ours(opt, params, 5)  # the uninterrupted run; must not change the saved snapshot

    resumed = make_params(ours_after(name, kwargs, 5))  # the parameters as they were saved
    fresh = getattr(optim, name)(resumed, **kwargs)
    fresh.load_state_dict(copy.deepcopy(saved))
    run_ours(fresh, resumed, 5)
    for p, r in zip(params, resumed):
        np.testing.assert_array_equal(p.array, r.array)


def test_state_dict_layout_is_torchs():
    params = make_params(initial_arrays())
    opt = optim.Adam([{"params": params[:1]}, {"params": params[1:], "lr": 0.1}], amsgrad=True)
    params[1].grad = Tensor(np.ones(SHAPES[1]), dtype=np.float64)  # only param 1 has a gradient
    opt.step()
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0], [1, 2]]
    assert sd["param_groups"][1]["lr"] == 0.1 and sd["param_groups"][0]["lr"] == 1e-3
    assert list(sd["state"]) == [1]
    assert set(sd["state"][1]) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    assert sd["state"][1]["step"] == 1 and isinstance(sd["state"][1]["exp_avg"], np.ndarray)


def test_load_state_dict_rejects_a_different_model():
    opt = optim.SGD(make_params(initial_arrays()), lr=0.1, momentum=0.9)
    smaller = optim.SGD(make_params(initial_arrays()[:2]), lr=0.1)
    with pytest.raises(ValueError, match="group 0 has 2 parameters"):
        opt.load_state_dict(smaller.state_dict())
    params = make_params(initial_arrays())
    other = optim.SGD(params, lr=0.1, momentum=0.9)
    run_ours(other, params, 1)
    sd = other.state_dict()
    sd["state"][0]["momentum_buffer"] = np.zeros(7)
    with pytest.raises(ValueError, match=r"shape \(7,\)"):
        opt.load_state_dict(sd)


def test_load_state_dict_casts_to_param_dtype():
    params = make_params(initial_arrays(np.float32))
    opt = optim.Adam(params)
    donor_params = make_params(initial_arrays())
    donor = optim.Adam(donor_params)
    run_ours(donor, donor_params, 2)
    opt.load_state_dict(donor.state_dict())
    assert all(s["exp_avg"].dtype == np.float32 for s in opt.state.values())


@pytest.mark.parametrize("name,kwargs", OPTIMIZER_CASES, ids=CASE_IDS)
def test_float32_updates_in_place_without_upcast(name, kwargs):
    params = make_params(initial_arrays(np.float32))
    before = [p.array for p in params]
    opt = getattr(optim, name)(params, **kwargs)
    run_ours(opt, params, 3)
    for p, arr in zip(params, before):
        assert p.array is arr and p.array.dtype == np.float32
    for state in opt.state.values():
        assert all(v.dtype == np.float32 for v in state.values() if isinstance(v, np.ndarray))


def test_step_skips_params_without_grad_and_leaves_grads_alone():
    params = make_params(initial_arrays())
    untouched = params[0].array.copy()
    opt = optim.Adam(params, weight_decay=0.1, maximize=True)
    g = pseudo_grad(params[1].array, 1)
    params[1].grad = Tensor(g.copy(), dtype=np.float64)
    opt.step()
    np.testing.assert_array_equal(params[0].array, untouched)
    np.testing.assert_array_equal(params[1].grad.array, g)
    assert params[0] not in opt.state and params[1] in opt.state


def test_zero_grad():
    params = make_params(initial_arrays())
    opt = optim.SGD(params, lr=0.1)
    for i, p in enumerate(params):
        p.grad = Tensor(pseudo_grad(p.array, i), dtype=np.float64)
    grad_array = params[0].grad.array
    opt.zero_grad(set_to_none=False)
    assert params[0].grad.array is grad_array and not grad_array.any()
    opt.zero_grad()
    assert all(p.grad is None for p in params)


def test_step_with_closure_returns_its_loss():
    p = Tensor(np.array([3.0]), dtype=np.float64, requires_grad=True)
    opt = optim.SGD([p], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == 9.0 and p.array[0] == 1.5  # 3 - 0.25 * 2 * 3


def test_sgd_converges_on_a_quadratic():
    target = np.array([1.0, -2.0, 3.0])
    p = Tensor(np.zeros(3), dtype=np.float64, requires_grad=True)
    opt = optim.SGD([p], lr=0.1, momentum=0.5)
    for _ in range(100):
        p.grad = Tensor(2 * (p.array - target), dtype=np.float64)
        opt.step()
    np.testing.assert_allclose(p.array, target, atol=1e-6)


@pytest.mark.parametrize("name,lr", [("SGD", 0.1), ("Adam", 0.05), ("RMSprop", 0.01)])
def test_linear_regression_trains_with_autograd(name, lr):
    rng = np.random.default_rng(1)
    x = Tensor(rng.standard_normal((64, 3)).astype(np.float32))
    w_true = np.array([[1.5], [-2.0], [0.5]], np.float32)
    y = Tensor(x.array @ w_true + 0.3)  # (64, 1)
    w = Tensor(np.zeros((3, 1), np.float32), requires_grad=True)
    b = Tensor(np.zeros(1, np.float32), requires_grad=True)
    opt = getattr(optim, name)([w, b], lr=lr)
    for _ in range(300):
        opt.zero_grad()
        loss = ((x @ w + b - y) ** 2).mean()
        loss.backward()
        opt.step()
    assert loss.item() < 1e-4
    np.testing.assert_allclose(w.array, w_true, atol=1e-2)
    assert w.array.dtype == np.float32


def test_constructor_errors_speak():
    params = make_params(initial_arrays())
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="can only optimize Tensors"):
        optim.SGD([np.zeros(3)], lr=0.1)
    with pytest.raises(TypeError, match="single Tensor"):
        optim.SGD(params[0], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": params}, {"params": params[:1]}], lr=0.1)
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD(params, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam(params, betas=(0.9, 1.0))


def test_add_param_group_takes_defaults():
    params = make_params(initial_arrays())
    opt = optim.Adam(params[:2], lr=0.01)
    opt.add_param_group({"params": params[2], "betas": (0.5, 0.5)})
    group = opt.param_groups[1]
    assert len(group["params"]) == 1 and group["params"][0] is params[2]
    assert group["lr"] == 0.01 and group["betas"] == (0.5, 0.5)


# ---------------------------------------------------------------- schedulers
def lr_sequence(opt, scheduler, steps: int, metrics=None) -> list[list[float]]:
    """The lrs (and momentum / beta1 if present) after construction and after each step."""
    def snapshot():
        group_values = []
        for g in opt.param_groups:
            momentum = g["betas"][0] if "betas" in g else g.get("momentum")
            group_values.append((g["lr"], momentum))
        return [scheduler.get_last_lr(), group_values]

    seq = [snapshot()]
    for t in range(steps):
        opt.step()
        if metrics is None:
            scheduler.step()
        else:
            scheduler.step(metrics[t])
        seq.append(snapshot())
    return seq


PLATEAU_METRICS = [1.0, 0.9, 0.9, 0.95, 0.9, 0.89, 0.91, 0.92, 0.93, 0.5, 0.5, 0.5, 0.5, 0.5,
                   0.4999, 0.49, 0.6, 0.6, 0.6, 0.6, 0.6, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3,
                   0.3]
# (scheduler name, optimizer name, optimizer kwargs, scheduler kwargs)
SCHEDULER_CASES = [
    ("StepLR", "SGD", {"lr": 0.1}, {"step_size": 7, "gamma": 0.5}),
    ("MultiStepLR", "SGD", {"lr": 0.1}, {"milestones": [3, 10, 10, 25], "gamma": 0.3}),
    ("ExponentialLR", "Adam", {"lr": 0.1}, {"gamma": 0.9}),
    ("CosineAnnealingLR", "SGD", {"lr": 0.1}, {"T_max": 10, "eta_min": 0.001}),
    ("CosineAnnealingLR", "SGD", {"lr": 0.1}, {"T_max": 7}),
    ("ReduceLROnPlateau", "SGD", {"lr": 0.1}, {"patience": 2}),
    ("ReduceLROnPlateau", "SGD", {"lr": 0.1},
     {"factor": 0.5, "patience": 1, "cooldown": 2, "min_lr": 0.02, "threshold_mode": "abs",
      "threshold": 0.01}),
    ("ReduceLROnPlateau", "Adam", {"lr": 0.1}, {"mode": "max", "patience": 1, "factor": 0.3}),
    ("OneCycleLR", "SGD", {"lr": 0.1, "momentum": 0.9}, {"max_lr": 1.0, "total_steps": 30}),
    ("OneCycleLR", "SGD", {"lr": 0.1, "momentum": 0.9},
     {"max_lr": 0.5, "epochs": 3, "steps_per_epoch": 10, "anneal_strategy": "linear",
      "pct_start": 0.4}),
    ("OneCycleLR", "SGD", {"lr": 0.1, "momentum": 0.9},
     {"max_lr": 0.5, "total_steps": 30, "three_phase": True, "div_factor": 10.0,
      "final_div_factor": 100.0, "base_momentum": 0.8, "max_momentum": 0.9}),
    ("OneCycleLR", "Adam", {"lr": 0.1}, {"max_lr": 0.01, "total_steps": 30}),
    ("OneCycleLR", "SGD", {"lr": 0.1}, {"max_lr": 0.1, "total_steps": 30,
                                        "cycle_momentum": False}),
]
SCHEDULER_IDS = [f"{s}-{o}-{i}" for i, (s, o, _, _) in enumerate(SCHEDULER_CASES)]


def build_scheduler(lib, sched_name, opt_name, opt_kwargs, sched_kwargs, params):
    """An optimizer with two param groups (the second at half the lr) and its scheduler."""
    lr = opt_kwargs["lr"]
    groups = [{"params": params[:1]}, {"params": params[1:], "lr": lr / 2}]
    opt = getattr(lib, opt_name)(groups, **opt_kwargs)
    return opt, getattr(lib.lr_scheduler, sched_name)(opt, **sched_kwargs)


@pytest.mark.parametrize("sched_name,opt_name,opt_kwargs,sched_kwargs", SCHEDULER_CASES,
                         ids=SCHEDULER_IDS)
def test_scheduler_matches_torch(sched_name, opt_name, opt_kwargs, sched_kwargs):
    torch = pytest.importorskip("torch")
    metrics = PLATEAU_METRICS if sched_name == "ReduceLROnPlateau" else None
    opt, sched = build_scheduler(optim, sched_name, opt_name, opt_kwargs, sched_kwargs,
                                 make_params(initial_arrays()[:2]))
    ours = lr_sequence(opt, sched, 30, metrics)
    tparams = [torch.zeros(2, requires_grad=True) for _ in range(2)]
    topt, tsched = build_scheduler(torch.optim, sched_name, opt_name, opt_kwargs, sched_kwargs,
                                   tparams)
    theirs = lr_sequence(topt, tsched, 30, metrics)
    assert ours == theirs


def test_scheduler_comparison_catches_a_wrong_value():
    torch = pytest.importorskip("torch")
    args = ("CosineAnnealingLR", "SGD", {"lr": 0.1})
    opt, sched = build_scheduler(optim, *args, {"T_max": 10}, make_params(initial_arrays()[:2]))
    topt, tsched = build_scheduler(torch.optim, *args, {"T_max": 11},
                                   [torch.zeros(2, requires_grad=True) for _ in range(2)])
    assert lr_sequence(opt, sched, 5) != lr_sequence(topt, tsched, 5)


def test_cosine_annealing_follows_the_closed_form():
    opt = optim.SGD(make_params(initial_arrays()), lr=0.1)
    sched = lr_scheduler.CosineAnnealingLR(opt, T_max=20, eta_min=0.01)
    for t in range(1, 21):
        opt.step()
        sched.step()
        expected = 0.01 + (0.1 - 0.01) * (1 + np.cos(np.pi * t / 20)) / 2
        assert sched.get_last_lr()[0] == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_step_lr_and_plateau_without_torch():
    opt = optim.SGD(make_params(initial_arrays()), lr=1.0)
    sched = lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    lrs = [sched.get_last_lr()[0]]
    for _ in range(5):
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]

    opt = optim.SGD(make_params(initial_arrays()), lr=1.0)
    plateau = lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1, min_lr=0.3)
    for metric in [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]:
        plateau.step(metric)
    assert opt.param_groups[0]["lr"] == 0.3  # 1 -> 0.5 -> 0.3 (min_lr), then no further cuts


@pytest.mark.parametrize("sched_name,opt_name,opt_kwargs,sched_kwargs",
                         [SCHEDULER_CASES[i] for i in (0, 3, 6, 10)],
                         ids=[SCHEDULER_IDS[i] for i in (0, 3, 6, 10)])
def test_scheduler_state_dict_round_trip(sched_name, opt_name, opt_kwargs, sched_kwargs):
    metrics = PLATEAU_METRICS if sched_name == "ReduceLROnPlateau" else None
    opt, sched = build_scheduler(optim, sched_name, opt_name, opt_kwargs, sched_kwargs,
                                 make_params(initial_arrays()[:2]))
    lr_sequence(opt, sched, 12, metrics)
    saved_opt, saved_sched = copy.deepcopy(opt.state_dict()), copy.deepcopy(sched.state_dict())
    later_metrics = None if metrics is None else metrics[12:]
    expected = lr_sequence(opt, sched, 12, later_metrics)

    opt2, sched2 = build_scheduler(optim, sched_name, opt_name, opt_kwargs, sched_kwargs,
                                   make_params(initial_arrays()[:2]))
    opt2.load_state_dict(saved_opt)
    sched2.load_state_dict(saved_sched)
    assert lr_sequence(opt2, sched2, 12, later_metrics) == expected


def test_one_cycle_refuses_to_run_past_total_steps():
    opt = optim.SGD(make_params(initial_arrays()), lr=0.1, momentum=0.9)
    sched = lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=3)
    for _ in range(3):
        sched.step()
    with pytest.raises(ValueError, match="total_steps is 3"):
        sched.step()
    with pytest.raises(ValueError, match="momentum or betas"):
        lr_scheduler.OneCycleLR(optim.Adagrad(make_params(initial_arrays())), max_lr=1.0,
                                total_steps=3)


def test_one_cycle_state_dict_saves_as_checkpoint(tmp_path):
    """Every scheduler state must go through tg.save (no namedtuples or functions inside)."""
    import tinygrad_edu as tg
    from tinygrad_edu.optim.lr_scheduler import OneCycleLR
    model = tg.nn.Linear(2, 2)
    opt = tg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = OneCycleLR(opt, max_lr=1.0, total_steps=10)
    for _ in range(3):
        opt.step()
        sched.step()
    tg.save({"sched": sched.state_dict()}, tmp_path / "s.npz")
    fresh = OneCycleLR(tg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), max_lr=1.0,
                       total_steps=10)
    fresh.load_state_dict(tg.load(tmp_path / "s.npz")["sched"])
    sched.step()
    fresh.step()
    assert fresh.get_last_lr() == sched.get_last_lr()


FUSED_CASES = [(n, k) for n, k in OPTIMIZER_CASES if n in ("SGD", "Adam", "AdamW")]


@pytest.mark.parametrize("name,kwargs", FUSED_CASES,
                         ids=[f"{n}-{'-'.join(k) or 'default'}" for n, k in FUSED_CASES])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_update_equals_the_numpy_reference(name, kwargs, dtype):
    """C-contiguous parameters take the fused Numba loop (optim/kernels.py); Fortran-ordered
    ones the numpy formulas: both must give the same parameters and state after 6 steps."""
    from tinygrad_edu.optim.kernels import fusable

    fused = make_params(initial_arrays(dtype))
    reference = [Tensor(np.asfortranarray(a.reshape(a.shape[0], -1)), dtype=dtype,
                        requires_grad=True) for a in initial_arrays(dtype)]
    assert fusable(fused[0].array) and not fusable(reference[0].array)
    opts = [getattr(optim, name)(ps, **kwargs) for ps in (fused, reference)]
    for ps, opt in zip((fused, reference), opts):
        run_ours(opt, ps, 6)
    tol = 1e-13 if dtype == np.float64 else 1e-6
    for a, b in zip(fused, reference):
        np.testing.assert_allclose(a.array.reshape(-1), b.array.reshape(-1), rtol=tol, atol=tol)
    for sa, sb in zip(opts[0].state.values(), opts[1].state.values()):
        for key, value in sa.items():
            np.testing.assert_allclose(np.ravel(value), np.ravel(sb[key]), rtol=tol, atol=tol)


def test_sgd_updates_its_float32_parameters_in_one_job_and_the_others_alone(monkeypatch):
    """SGD with momentum hands every float32 C-contiguous parameter of a group to one native
    job (sgd_momentum_all_, its tasks cut across the parameters' boundaries here); a float64
    and a Fortran-ordered one in the same group take the per-parameter path. Each must end
    where the numpy formulas of a lone parameter take it."""
    from tinygrad_edu.optim import kernels, sgd
    jobs = []
    batched = kernels.sgd_momentum_all_
    monkeypatch.setattr(sgd, "sgd_momentum_all_", lambda ps, *a: (jobs.append(len(ps)),
                                                                  batched(ps, *a)))
    monkeypatch.setattr(kernels, "_NATIVE_ELEMENTS", 7)  # many tasks, none on a boundary
    arrays = [a.astype(np.float32) for a in initial_arrays()] + [initial_arrays()[0]]
    ours = make_params(arrays) + [Tensor(np.asfortranarray(arrays[0]), requires_grad=True)]
    kwargs = {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01, "nesterov": True}
    run_ours(optim.SGD(ours, **kwargs), ours, 4)
    monkeypatch.setattr(sgd, "batchable", lambda *arrays: False)  # the numpy formulas
    monkeypatch.setattr(sgd, "fusable", lambda *arrays: False)
    reference = make_params(arrays + [arrays[0]])
    run_ours(optim.SGD(reference, **kwargs), reference, 4)
    assert jobs == [len(SHAPES)] * 3  # the first step makes the buffers, one at a time
    for a, b in zip(ours, reference):
        tol = 1e-6 if a.dtype == np.float32 else 1e-13
        np.testing.assert_allclose(a.array.reshape(-1), b.array.reshape(-1), rtol=tol,
                                   atol=tol)
