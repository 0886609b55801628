"""The paper's optimizers as ``torch.optim.Optimizer`` classes that differ only in their direction.

Every method here updates x <- x - lr * b_t with heavy-ball momentum b_t = momentum * b_{t-1} + u_t,
b_1 = u_1 (PyTorch's SGD convention, no dampening), applied to a direction u_t = direction(g_t).
So sign descent with momentum averages signs (it is not signum), and normalized GD normalises
before the momentum, as in the paper's code (paper summary section 4).

On CUDA the update runs through torch's ``_foreach`` kernels (a few launches for all parameters
instead of several per tensor); :attr:`DirectionOptimizer.foreach` forces either path, and the tests
check that both give the same parameters.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import torch
from torch import Tensor
from torch.optim import Optimizer


class DirectionOptimizer(Optimizer):
    """Heavy-ball momentum on a direction; subclasses override :meth:`direction` (and maybe :meth:`begin_step`,
    and :meth:`directions` for a foreach version)."""

    foreach: bool | None = None  # None: foreach kernels when every parameter is on CUDA; True/False forces the choice

    def __init__(self, params: Iterable[Any], lr: float, momentum: float = 0.0) -> None:
        self._init(params, lr, momentum)

    def _init(self, params: Iterable[Any], lr: float, momentum: float, **hyper: Any) -> None:
        """Validate the shared hyper-parameters and store them with a subclass's own ones."""
        if not lr > 0:
            raise ValueError(f"learning rate must be > 0, got {lr}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        super().__init__(params, dict(lr=lr, momentum=momentum, **hyper))

    def begin_step(self, grads: list[Tensor]) -> None:
        """Compute quantities shared by all parameters (e.g. a global norm) before the directions."""

    def direction(self, param: Tensor, grad: Tensor, group: dict[str, Any]) -> Tensor:
        """The update direction u_t of one parameter tensor; GD returns the gradient itself."""
        return grad

    def directions(self, params: list[Tensor], grads: list[Tensor], group: dict[str, Any]) -> list[Tensor]:
        """The directions of a list of parameters (the foreach path); by default :meth:`direction` per tensor."""
        return [self.direction(p, g, group) for p, g in zip(params, grads)]

    def _foreach_update(self, params: list[Tensor], group: dict[str, Any]) -> None:
        """The update of :meth:`step` for one parameter group through torch's foreach kernels."""
        directions = self.directions(params, [p.grad for p in params], group)
        if group["momentum"]:
            buffers, fresh = [], []
            for p, u in zip(params, directions):
                state = self.state[p]
                if "momentum_buffer" in state:
                    buffers.append(state["momentum_buffer"])
                    fresh.append(u)
                else:
                    state["momentum_buffer"] = u.clone()
            if buffers:
                torch._foreach_mul_(buffers, group["momentum"])
                torch._foreach_add_(buffers, fresh)
            directions = [self.state[p]["momentum_buffer"] for p in params]
        torch._foreach_add_(params, directions, alpha=-group["lr"])

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.begin_step([p.grad for group in self.param_groups for p in group["params"] if p.grad is not None])
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params and (self.foreach if self.foreach is not None else all(p.is_cuda for p in params)):
                self._foreach_update(params, group)
                continue
            for p in group["params"]:
                if p.grad is None:
                    continue
                u = self.direction(p, p.grad, group)
                if group["momentum"]:
                    state = self.state[p]
                    buffer = state.get("momentum_buffer")
                    if buffer is None:
                        buffer = state["momentum_buffer"] = u.clone()
                    else:
                        buffer.mul_(group["momentum"]).add_(u)
                    u = buffer
                p.add_(u, alpha=-group["lr"])
        return loss


class GD(DirectionOptimizer):
    """Gradient descent (full batch) or SGD (mini-batch): u_t = g_t."""


class SignDescent(DirectionOptimizer):
    """Sign descent: u_t = sign(g_t) elementwise."""

    def direction(self, param: Tensor, grad: Tensor, group: dict[str, Any]) -> Tensor:
        return torch.sign(grad)

    def directions(self, params: list[Tensor], grads: list[Tensor], group: dict[str, Any]) -> list[Tensor]:
        return list(torch._foreach_sign(grads))


class NormalizedGD(DirectionOptimizer):
    """Normalized GD: u_t = g_t / ||g_t||_2, the norm taken over all parameters together."""

    def begin_step(self, grads: list[Tensor]) -> None:
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])) if grads else None
        self._inverse_norm = None if norm is None else torch.where(norm > 0, 1.0 / norm, torch.zeros_like(norm))

    def direction(self, param: Tensor, grad: Tensor, group: dict[str, Any]) -> Tensor:
        return grad * self._inverse_norm

    def directions(self, params: list[Tensor], grads: list[Tensor], group: dict[str, Any]) -> list[Tensor]:
        return list(torch._foreach_mul(grads, self._inverse_norm))


class Adam(DirectionOptimizer):
    """Adam (torch.optim.Adam's rule): u_t = m_hat_t / (sqrt(v_hat_t) + eps); beta1 = 0 is Adam without momentum."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        beta1, beta2 = betas
        if not (0.0 <= beta1 < 1.0 and 0.0 <= beta2 < 1.0):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        self._init(params, lr, 0.0, betas=(float(beta1), float(beta2)), eps=eps)

    def direction(self, param: Tensor, grad: Tensor, group: dict[str, Any]) -> Tensor:
        beta1, beta2 = group["betas"]
        state = self.state[param]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(param)
            state["exp_avg_sq"] = torch.zeros_like(param)
        state["step"] += 1
        t = state["step"]
        exp_avg = state["exp_avg"].mul_(beta1).add_(grad, alpha=1 - beta1)
        exp_avg_sq = state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denominator = (exp_avg_sq / (1 - beta2**t)).sqrt_().add_(group["eps"])
        return exp_avg.div(1 - beta1**t).div_(denominator)

    def directions(self, params: list[Tensor], grads: list[Tensor], group: dict[str, Any]) -> list[Tensor]:
        """:meth:`direction` for all parameters at once, operation for operation."""
        beta1, beta2 = group["betas"]
        states = [self.state[p] for p in params]
        for p, state in zip(params, states):
            if not state:
                state.update(step=0, exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
            state["step"] += 1
        exp_avgs, exp_avg_sqs = [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states]
        torch._foreach_mul_(exp_avgs, beta1)
        torch._foreach_add_(exp_avgs, grads, alpha=1 - beta1)
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - beta2)
        denominators = torch._foreach_div(exp_avg_sqs, [1 - beta2 ** s["step"] for s in states])
        torch._foreach_sqrt_(denominators)
        torch._foreach_add_(denominators, group["eps"])
        updates = torch._foreach_div(exp_avgs, [1 - beta1 ** s["step"] for s in states])
        torch._foreach_div_(updates, denominators)
        return list(updates)


class AdaGrad(DirectionOptimizer):
    """AdaGrad (torch.optim.Adagrad's rule): G_t = G_{t-1} + g_t^2, u_t = g_t / (sqrt(G_t) + eps)."""

    def __init__(self, params: Iterable[Any], lr: float, eps: float = 1e-10) -> None:
        self._init(params, lr, 0.0, eps=eps)

    def direction(self, param: Tensor, grad: Tensor, group: dict[str, Any]) -> Tensor:
        state = self.state[param]
        if not state:
            state["sum_sq"] = torch.zeros_like(param)
        total = state["sum_sq"].addcmul_(grad, grad)
        return grad / total.sqrt().add_(group["eps"])
