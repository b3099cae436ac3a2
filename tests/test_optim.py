"""cnnlab.optim against torch.optim: same random gradients, several steps and shapes."""
import math

import numpy as np
import pytest
import torch

import cnnlab.optim as O

SHAPES = [(5,), (3, 4), (2, 3, 3, 3)]
STEPS = 7


def _run_pair(make_ours, make_torch, dtype=np.float64, steps=STEPS, seed=0, lr_seq=None):
    """Run both optimizers on identical params/gradients; return both final param lists."""
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    tparams = [torch.nn.Parameter(torch.from_numpy(p.copy())) for p in params]
    ours, theirs = make_ours(), make_torch(tparams)
    for k in range(steps):
        grads = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
        if lr_seq is not None:
            ours.lr = lr_seq[k]
            for group in theirs.param_groups:
                group["lr"] = lr_seq[k]
        for tp, g in zip(tparams, grads):
            tp.grad = torch.from_numpy(g.copy())
        theirs.step()
        ours.step(params, grads)
    return params, [tp.detach().numpy() for tp in tparams], ours


CASES = {
    "sgd": (lambda: O.SGD(0.1), lambda p: torch.optim.SGD(p, lr=0.1)),
    "sgd_momentum": (lambda: O.SGD(0.05, momentum=0.9),
                     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)),
    "sgd_nesterov_wd": (lambda: O.SGD(0.05, momentum=0.9, nesterov=True, weight_decay=1e-2),
                        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True,
                                                  weight_decay=1e-2)),
    "sgd_wd": (lambda: O.SGD(0.1, weight_decay=0.1),
               lambda p: torch.optim.SGD(p, lr=0.1, weight_decay=0.1)),
    "rmsprop": (lambda: O.RMSProp(1e-2), lambda p: torch.optim.RMSprop(p, lr=1e-2)),
    "rmsprop_momentum_wd": (
        lambda: O.RMSProp(1e-2, alpha=0.9, eps=1e-6, momentum=0.8, weight_decay=1e-3),
        lambda p: torch.optim.RMSprop(p, lr=1e-2, alpha=0.9, eps=1e-6, momentum=0.8,
                                      weight_decay=1e-3)),
    "rmsprop_centered": (lambda: O.RMSProp(1e-2, centered=True, momentum=0.5),
                         lambda p: torch.optim.RMSprop(p, lr=1e-2, centered=True,
                                                       momentum=0.5)),
    "adam": (lambda: O.Adam(1e-2), lambda p: torch.optim.Adam(p, lr=1e-2)),
    "adam_wd_betas": (
        lambda: O.Adam(3e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05),
        lambda p: torch.optim.Adam(p, lr=3e-3, betas=(0.8, 0.99), eps=1e-6,
                                   weight_decay=0.05)),
    "adamw": (lambda: O.AdamW(1e-2), lambda p: torch.optim.AdamW(p, lr=1e-2)),
    "adamw_strong": (lambda: O.AdamW(1e-2, betas=(0.5, 0.9), weight_decay=0.3),
                     lambda p: torch.optim.AdamW(p, lr=1e-2, betas=(0.5, 0.9),
                                                 weight_decay=0.3)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_torch_float64(case):
    ours, theirs = CASES[case]
    a, b, _ = _run_pair(ours, theirs)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("case", ["sgd_nesterov_wd", "rmsprop_momentum_wd", "adam", "adamw"])
def test_matches_torch_float32_and_keeps_dtype(case):
    ours, theirs = CASES[case]
    a, b, opt = _run_pair(ours, theirs, dtype=np.float32)
    for x, y in zip(a, b):
        assert x.dtype == np.float32
        np.testing.assert_allclose(x, y, rtol=2e-5, atol=2e-6)
    for k, v in opt.state_dict().items():
        if isinstance(v, np.ndarray):
            assert v.dtype == np.float32, k


@pytest.mark.parametrize("case", ["sgd_momentum", "adam", "rmsprop_momentum_wd"])
def test_changing_lr_matches_torch(case):
    """A schedule changes opt.lr between steps; torch's param_group lr does the same."""
    ours, theirs = CASES[case]
    lrs = [0.1, 0.05, 0.05, 0.02, 0.01, 0.01, 0.001]
    a, b, _ = _run_pair(ours, theirs, lr_seq=lrs)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-13)


def test_cs231n_momentum_form_equal_for_constant_lr():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((4, 3))
    w2, v = w.copy(), np.zeros_like(w)
    opt = O.SGD(0.1, momentum=0.9)
    for _ in range(6):
        g = rng.standard_normal(w.shape)
        opt.step([w], [g])
        v = 0.9 * v - 0.1 * g          # cs231n sgd_momentum
        w2 += v
    np.testing.assert_allclose(w, w2, rtol=1e-12)


def test_cs231n_adam_form_equal():
    rng = np.random.default_rng(2)
    w = rng.standard_normal(10)
    w2, m, v = w.copy(), np.zeros(10), np.zeros(10)
    opt = O.Adam(1e-2)
    for t in range(1, 7):
        g = rng.standard_normal(10)
        opt.step([w], [g])
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        w2 -= 1e-2 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    np.testing.assert_allclose(w, w2, rtol=1e-10)


@pytest.mark.parametrize("case", ["sgd_nesterov_wd", "rmsprop_centered", "adam_wd_betas"])
def test_state_dict_roundtrip_through_npz(case, tmp_path):
    """3 steps, save state via np.savez, load into a fresh optimizer, 4 more steps ==
    7 uninterrupted steps."""
    make, _ = CASES[case]
    rng = np.random.default_rng(3)
    p0 = [rng.standard_normal(s) for s in SHAPES]
    gs = [[rng.standard_normal(s) for s in SHAPES] for _ in range(7)]
    full, opt = [p.copy() for p in p0], make()
    for g in gs:
        opt.step(full, g)
    part, opt1 = [p.copy() for p in p0], make()
    for g in gs[:3]:
        opt1.step(part, g)
    np.savez(tmp_path / "s.npz", **opt1.state_dict())
    with np.load(tmp_path / "s.npz", allow_pickle=False) as f:
        d = dict(f)
    opt2 = make()
    opt2.lr = 123.0
    opt2.load_state_dict(d)
    assert opt2.lr == opt1.lr and opt2.t == 3
    for g in gs[3:]:
        opt2.step(part, g)
    for x, y in zip(full, part):
        np.testing.assert_array_equal(x, y)


def test_load_state_dict_errors():
    opt = O.Adam()
    opt.step([np.zeros(3)], [np.ones(3)])
    d = opt.state_dict()
    del d["state.0.exp_avg_sq"]
    with pytest.raises(KeyError, match="exp_avg_sq"):
        O.Adam().load_state_dict(d)
    with pytest.raises(KeyError, match="'t'"):
        O.Adam().load_state_dict({"lr": 0.1})
    with pytest.raises(KeyError, match="unexpected"):
        O.SGD(0.1).load_state_dict(opt.state_dict())


def test_argument_and_step_errors():
    with pytest.raises(ValueError, match="lr"):
        O.SGD(-1.0)
    with pytest.raises(ValueError, match="momentum"):
        O.SGD(0.1, momentum=1.5)
    with pytest.raises(ValueError, match="nesterov"):
        O.SGD(0.1, nesterov=True)
    with pytest.raises(ValueError, match="betas"):
        O.Adam(betas=(0.9,))
    with pytest.raises(ValueError, match=r"betas\[1\]"):
        O.Adam(betas=(0.9, 1.0))
    opt = O.SGD(0.1, momentum=0.9)
    with pytest.raises(ValueError, match="same length"):
        opt.step([np.zeros(2)], [])
    with pytest.raises(ValueError, match=r"grads\[0\].*\(2,\).*\(3,\)"):
        opt.step([np.zeros(2)], [np.zeros(3)])
    with pytest.raises(TypeError, match="floating ndarray"):
        opt.step([[0.0, 1.0]], [np.zeros(2)])
    opt.step([np.zeros(2)], [np.ones(2)])
    with pytest.raises(ValueError, match="holds 1 parameter arrays but step\\(\\) got 2"):
        opt.step([np.zeros(2), np.zeros(2)], [np.ones(2), np.ones(2)])


def test_float64_grad_does_not_upcast_float32_param():
    p = np.ones(4, np.float32)
    O.Adam(0.1).step([p], [np.ones(4)])
    assert p.dtype == np.float32 and np.all(p < 1)


def test_get_builds_from_config():
    opt = O.RMSProp(0.02, momentum=0.3)
    opt2 = O.get("RMSProp", **opt.get_config())
    assert opt2.get_config() == opt.get_config()
    with pytest.raises(ValueError, match="unknown optimizer 'Nadam'"):
        O.get("Nadam")


# ----- clipping ---------------------------------------------------------------------------
@pytest.mark.parametrize("max_norm,norm_type", [(1.0, 2.0), (100.0, 2.0), (0.5, math.inf),
                                                (2.0, 1.0)])
def test_clip_grad_norm_matches_torch(max_norm, norm_type):
    rng = np.random.default_rng(4)
    grads = [rng.standard_normal(s) for s in SHAPES]
    tp = [torch.nn.Parameter(torch.zeros(s, dtype=torch.float64)) for s in SHAPES]
    for t, g in zip(tp, grads):
        t.grad = torch.from_numpy(g.copy())
    tn = torch.nn.utils.clip_grad_norm_(tp, max_norm, norm_type=norm_type)
    n = O.clip_grad_norm(grads, max_norm, norm_type=norm_type)
    assert n == pytest.approx(float(tn), rel=1e-12)
    for g, t in zip(grads, tp):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-12)


def test_clip_grad_norm_float32_in_place_and_errors():
    g = np.full(4, 3.0, np.float32)
    ref = g
    total = O.clip_grad_norm([g], 1.0)
    assert total == pytest.approx(6.0) and ref is g and g.dtype == np.float32
    assert np.linalg.norm(g) == pytest.approx(1.0, rel=1e-5)
    with pytest.raises(ValueError, match="max_norm"):
        O.clip_grad_norm([g], -1)
    with pytest.raises(TypeError, match=r"grads\[0\]"):
        O.clip_grad_norm([[1.0]], 1.0)
    assert O.clip_grad_norm([], 1.0) == 0.0


# ----- schedules --------------------------------------------------------------------------
def _torch_lrs(make_sched, n, base_lr=0.1):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=base_lr)
    sched = make_sched(opt)
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


S = torch.optim.lr_scheduler
SCHEDULES = {
    "step": (O.StepLR(0.1, 3, gamma=0.5), lambda o: S.StepLR(o, 3, gamma=0.5), 12),
    "multistep": (O.MultiStepLR(0.1, [2, 5, 9], 0.3), lambda o: S.MultiStepLR(o, [2, 5, 9], 0.3),
                  12),
    "exponential": (O.ExponentialLR(0.1, 0.9), lambda o: S.ExponentialLR(o, 0.9), 10),
    "linear_warmup": (O.LinearWarmup(0.1, 5, start_factor=0.2),
                      lambda o: S.LinearLR(o, start_factor=0.2, total_iters=5), 10),
    "cosine": (O.CosineAnnealing(0.1, 10, eta_min=1e-3),
               lambda o: S.CosineAnnealingLR(o, 10, eta_min=1e-3), 11),
    "cosine_warmup": (
        O.CosineAnnealing(0.1, 12, eta_min=0.0, warmup=3, warmup_start_factor=0.1),
        lambda o: S.SequentialLR(o, [S.LinearLR(o, start_factor=0.1, total_iters=3),
                                     S.CosineAnnealingLR(o, 9)], milestones=[3]), 13),
    "onecycle": (O.OneCycle(0.5, 40), lambda o: S.OneCycleLR(o, 0.5, total_steps=40,
                                                             cycle_momentum=False), 40),
    "onecycle_linear_3phase": (
        O.OneCycle(0.5, 30, pct_start=0.25, anneal_strategy="linear", three_phase=True),
        lambda o: S.OneCycleLR(o, 0.5, total_steps=30, pct_start=0.25,
                               anneal_strategy="linear", three_phase=True,
                               cycle_momentum=False), 30),
}


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedules_match_torch(name):
    ours, make, n = SCHEDULES[name]
    base = 0.1
    expected = _torch_lrs(make, n, base)
    got = [ours(t) for t in range(n)]
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


def test_schedule_edges_and_errors():
    assert O.CosineAnnealing(0.1, 5, eta_min=0.01)(50) == 0.01
    oc = O.OneCycle(1.0, 10)
    assert oc.per_step and oc(100) == oc(9)
    assert not O.StepLR(0.1, 2).per_step
    with pytest.raises(ValueError, match="warmup must be < T_max"):
        O.CosineAnnealing(0.1, 5, warmup=5)
    with pytest.raises(ValueError, match="t must be >= 0"):
        O.StepLR(0.1, 2)(-1)
    with pytest.raises(TypeError, match="step_size must be an integer"):
        O.StepLR(0.1, 2.5)
    with pytest.raises(ValueError, match="anneal_strategy"):
        O.OneCycle(1.0, 10, anneal_strategy="exp")
    assert "StepLR(base_lr=0.1" in repr(O.StepLR(0.1, 2))


@pytest.mark.parametrize("kw", [dict(), dict(mode="max", threshold_mode="abs", threshold=0.1),
                                dict(factor=0.5, patience=1, cooldown=2, min_lr=0.004)])
def test_reduce_on_plateau_matches_torch(kw):
    rng = np.random.default_rng(5)
    metrics = list(np.cumsum(rng.standard_normal(40) * 0.3))
    kw = {"patience": 2, **kw}
    p = torch.nn.Parameter(torch.zeros(1))
    topt = torch.optim.SGD([p], lr=0.1)
    tsched = S.ReduceLROnPlateau(topt, **kw)
    ours, lr = O.ReduceLROnPlateau(**kw), 0.1
    for m in metrics:
        tsched.step(m)
        lr = ours.step(m, lr)
        assert lr == pytest.approx(topt.param_groups[0]["lr"], rel=1e-12)
    st = ours.state_dict()
    again = O.ReduceLROnPlateau(**kw)
    again.load_state_dict(st)
    assert again.state_dict() == st
    with pytest.raises(ValueError, match="mode"):
        O.ReduceLROnPlateau(mode="up")


def test_onecycle_shorter_than_its_warmup_step_does_not_divide_by_zero():
    # 4 steps, 25 % warm-up: the warm-up phase ends at step 0 (a zero-length phase)
    sched = O.OneCycle(0.2, total_steps=4, pct_start=0.25)
    lrs = [sched(t) for t in range(4)]
    assert lrs[0] == pytest.approx(0.2)           # the (empty) warm-up is complete
    assert all(np.isfinite(lrs)) and lrs[-1] < lrs[1] < lrs[0]


@pytest.mark.parametrize("opt", [O.SGD(lr=0.1, momentum=0.9), O.Adam(1e-3), O.RMSProp(1e-3, momentum=0.9)])
def test_decayed_state_is_flushed_from_subnormal_to_zero(opt):
    # a unit that got one tiny gradient and then none: its running averages decay through
    # float32's subnormal range, where x86 arithmetic is ~100x slower
    p = np.ones(4, np.float32)
    opt.step([p], [np.full(4, 1e-30, np.float32)])
    tiny = np.finfo(np.float32).tiny
    for _ in range(400):
        opt.step([p], [np.zeros(4, np.float32)])
        state = [b for slots in opt._state for b in slots.values()]
        if opt.t % 16 == 0:
            assert all(not np.any((b != 0) & (np.abs(b) < tiny)) for b in state)
    assert all(np.all(b == 0) for b in state)  # decayed away (cleared at the last flush)
    assert np.all(np.isfinite(p))
