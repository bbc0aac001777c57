"""The optimizer step, lean: global-norm gradient clipping and AdamW (weight decay on matrices only) in two calls of
torch's fused AdamW kernel, the one `torch.optim.AdamW(fused=True)` calls, with the same arithmetic as
`clip_grad_norm_(foreach=True)` and `AdamW.step` (tests/test_sweep.py checks equality on real steps). What it
saves is the optimizer's Python wrapper: on the CPU demo's tiny models that wrapper cost a fifth of a millisecond
per step, 4-25% of the step (docs/performance.md)."""

from __future__ import annotations

import torch


class AdamW:
    def __init__(self, model, lr: float, betas=(0.9, 0.99), weight_decay: float = 0.1, eps: float = 1e-8):
        self.decay = [p for p in model.parameters() if p.dim() >= 2]
        self.no_decay = [p for p in model.parameters() if p.dim() < 2]
        self.params = self.decay + self.no_decay
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.steps = [torch.zeros((), dtype=torch.float32, device=p.device) for p in self.params]
        self.lr, self.betas, self.weight_decay, self.eps = lr, betas, weight_decay, eps
        self.fused = hasattr(torch, "_fused_adamw_")
        self._fallback = None if self.fused else torch.optim.AdamW(
            [{"params": self.decay, "weight_decay": weight_decay}, {"params": self.no_decay, "weight_decay": 0.0}],
            lr=lr, betas=betas, eps=eps, foreach=True)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self, grad_clip: float | None) -> None:
        """Clip the gradients to a global norm of `grad_clip` (None: no clipping), then one AdamW step."""
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        if grad_clip is not None:
            norms = torch._foreach_norm(grads, 2.0)
            total = torch.linalg.vector_norm(torch.stack(norms), 2.0)
            torch._foreach_mul_(grads, torch.clamp(grad_clip / (total + 1e-6), max=1.0))
        if not self.fused:
            for g in self._fallback.param_groups:
                g["lr"] = self.lr
            self._fallback.step()
            return
        n = len(self.decay)
        b1, b2 = self.betas
        torch._foreach_add_(self.steps, 1)  # the kernel reads the step count; AdamW.step increments it first
        for lo, hi, wd in ((0, n, self.weight_decay), (n, len(self.params), 0.0)):
            if hi > lo:
                torch._fused_adamw_(self.params[lo:hi], grads[lo:hi], self.exp_avg[lo:hi], self.exp_avg_sq[lo:hi],
                                    [], self.steps[lo:hi], lr=self.lr, beta1=b1, beta2=b2, weight_decay=wd,
                                    eps=self.eps, amsgrad=False, maximize=False)

    def state_dict(self) -> dict:
        if not self.fused:
            return {"torch": self._fallback.state_dict()}
        return {"exp_avg": self.exp_avg, "exp_avg_sq": self.exp_avg_sq, "steps": self.steps, "lr": self.lr}

    def load_state_dict(self, state: dict) -> None:
        if "torch" in state or "param_groups" in state:  # torch's own AdamW state (checkpoints of older versions)
            inner = state.get("torch", state)
            per = [inner["state"].get(i, {}) for i in range(len(self.params))]
            if not self.fused:
                self._fallback.load_state_dict(inner)
                return
            self.exp_avg = [s.get("exp_avg", torch.zeros_like(p)) for s, p in zip(per, self.params)]
            self.exp_avg_sq = [s.get("exp_avg_sq", torch.zeros_like(p)) for s, p in zip(per, self.params)]
            self.steps = [torch.as_tensor(s.get("step", 0.0), dtype=torch.float32) for s in per]
            return
        self.exp_avg, self.exp_avg_sq, self.steps = state["exp_avg"], state["exp_avg_sq"], state["steps"]
        self.lr = state.get("lr", self.lr)
