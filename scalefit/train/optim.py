"""Optimizers: AdamW with nanoGPT parameter groups, and AdamH (Adam on the hypersphere).

**AdamW** (``torch.optim.AdamW``): the hidden matrices and an untied LM head get decoupled weight
decay ``W <- (1 - lr_t * wd) W``; the token and position embeddings too unless the run says
``decay_embeddings = False`` (spec field ``optim.decay_embeddings``, default true: nanoGPT's
"every 2-D parameter" rule, which every grid before the field used). With it false, AdamW decays
exactly the matrices AdamH keeps on its sphere, so the two compare like for like. Gains and biases
get none. One LR for all groups, scaled by the schedule.

**AdamH** (Wen et al. 2025, "Hyperball"; Levanter ``optim/adamh.py``). Covered parameters: the
hidden Linear weights (q, k, v, o, fc, proj of every block) and an *untied* LM head (as
Levanter does: it is a Linear). With u the bias-corrected Adam direction m_hat / (sqrt(v_hat) + eps)
and R = ||W_0||_F stored at the first step::

    W <- R * normalize(W - lr_t * R * normalize(u)),     lr_t = lr * s(t)

so every covered matrix stays on the sphere of radius R and the LR *is* the relative step before
projection (the per-step angle is ~ lr_t). The token/position embeddings (a tied LM head
included), LayerNorm gains and biases use plain Adam (no weight decay) at ``adam_lr * s(t)``.
AdamH itself uses no weight decay: on the sphere it is a first-order no-op. (See the theory
page, docs/theory.md#adamh-rule and docs/theory.md#adamh-lr.)
"""
from __future__ import annotations

import torch

__all__ = ["AdamH", "build_optimizer"]


class AdamH(torch.optim.Optimizer):
    """Adam whose ``hyper=True`` groups are kept on the sphere of their initial Frobenius norm.

    Parameters
    ----------
    params : iterable
        Parameters or parameter groups; a group with ``hyper=True`` takes the AdamH update, the
        others plain Adam without weight decay.
    lr : float, default 1e-2
        Default LR of a group (the training loop sets each group's ``lr`` every step).
    betas : tuple of float, default (0.9, 0.95)
        Adam's moment decay rates.
    eps : float, default 1e-8
        Added to the root of the second moment.
    """

    def __init__(self, params, lr: float = 1e-2, betas=(0.9, 0.95), eps: float = 1e-8):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, hyper=False))

    @torch.no_grad()
    def step(self, closure=None):
        """Take one optimizer step.

        Parameters
        ----------
        closure : callable, optional
            Re-evaluates the model and returns the loss.

        Returns
        -------
        float or None
            The closure's loss, if one was given.

        Raises
        ------
        ValueError
            If a ``hyper`` matrix has norm 0 at its first step (no sphere to keep it on).
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, (b1, b2), eps = group["lr"], group["betas"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st["step"] = 0
                    st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    if group["hyper"]:
                        st["radius"] = float(p.double().norm())  # R = ||W_0||_F
                        if st["radius"] == 0.0:
                            raise ValueError("AdamH cannot keep a zero-initialised matrix on a sphere")
                st["step"] += 1
                m, v, t = st["exp_avg"], st["exp_avg_sq"], st["step"]
                m.lerp_(p.grad, 1 - b1)
                v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                u = (m / (1 - b1 ** t)) / ((v / (1 - b2 ** t)).sqrt_().add_(eps))
                if group["hyper"]:
                    R = st["radius"]
                    # tensor-valued scales: no host sync per matrix on GPU
                    p.sub_(u.mul_((lr * R) / u.norm().clamp_min(1e-12)))
                    p.mul_(R / p.norm())
                else:
                    p.sub_(u, alpha=lr)
        return loss


def build_optimizer(model, config: dict) -> torch.optim.Optimizer:
    """Optimizer for ``model`` from a run config; each group carries ``base_lr`` (the peak LR)
    so the training loop sets ``group['lr'] = group['base_lr'] * s(t)``.

    Parameters
    ----------
    model : GPT
        The model (its parameter roles: :meth:`scalefit.train.gpt.GPT.hidden_matrices`).
    config : dict
        A run's ``config``: optimizer, lr, weight_decay, betas, eps, adam_lr (AdamH),
        decay_embeddings (AdamW, default true).

    Returns
    -------
    torch.optim.Optimizer
        ``torch.optim.AdamW`` with groups ``decay`` / ``no_decay``, or :class:`AdamH` with groups
        ``hyper`` / ``adam``.

    Raises
    ------
    ValueError
        If the optimizer is neither ``adamw`` nor ``adamh``.
    """
    hidden = {id(p) for _, p in model.hidden_matrices()}
    betas, eps = tuple(config["betas"]), config["eps"]
    if config["optimizer"] == "adamw":
        skip = set() if config.get("decay_embeddings", True) else {id(model.wte.weight), id(model.wpe.weight)}
        decay = [p for p in model.parameters() if p.dim() >= 2 and id(p) not in skip]  # tied head = wte
        no_decay = [p for p in model.parameters() if p.dim() < 2 or id(p) in skip]
        lr = config["lr"]
        groups = [dict(params=decay, weight_decay=config["weight_decay"], base_lr=lr, lr=lr, name="decay"),
                  dict(params=no_decay, weight_decay=0.0, base_lr=lr, lr=lr, name="no_decay")]
        return torch.optim.AdamW(groups, betas=betas, eps=eps)
    if config["optimizer"] == "adamh":
        if model.lm_head is not None:
            hidden.add(id(model.lm_head.weight))
        hyper = [p for p in model.parameters() if id(p) in hidden]
        rest = [p for p in model.parameters() if id(p) not in hidden]
        lr, alr = config["lr"], config["adam_lr"]
        groups = [dict(params=hyper, hyper=True, base_lr=lr, lr=lr, name="hyper"),
                  dict(params=rest, hyper=False, base_lr=alr, lr=alr, name="adam")]
        return AdamH(groups, betas=betas, eps=eps)
    raise ValueError(f"unknown optimizer {config['optimizer']!r}")
