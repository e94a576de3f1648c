"""Spike functions with surrogate gradients (method.md, section 2 / Eq. 5).

The forward pass of every surrogate is the Heaviside step ``S = 1(x >= 0)``
with ``x = H - V_th``. The backward pass replaces the Dirac delta by the
derivative of a smooth (or piecewise-linear) *primitive* -- a function that
rises from 0 to 1 around ``x = 0``. Each surrogate exposes that primitive, so
its gradient can be checked against a finite difference.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "Surrogate",
    "Rectangle",
    "Sigmoid",
    "ATan",
    "Triangle",
    "Tanh",
    "SURROGATES",
    "get_surrogate",
    "heaviside",
    "indicator",
]


def indicator(compare, x: Tensor, value: float, out: Tensor | None = None) -> Tensor:
    """``compare(x, value)`` (``torch.ge``, ``torch.lt``, ...) as 0/1 in the dtype of ``x``
    (written into ``out`` when given).

    Outside autograd and compilation the comparison writes straight into a float
    tensor: on the CPU a ``bool`` result and its conversion cost about three times as much.
    """
    if (x.requires_grad and torch.is_grad_enabled()) or torch.compiler.is_compiling():
        result = compare(x, value).to(x.dtype)
        return result if out is None else out.copy_(result)
    return compare(x, value, out=torch.empty_like(x) if out is None else out)


def heaviside(x: Tensor) -> Tensor:
    """``1`` where ``x >= 0``, else ``0``, in the dtype of ``x``."""
    return indicator(torch.ge, x, 0.0)


class _SpikeFunction(torch.autograd.Function):
    """Heaviside forward, ``surrogate.grad`` backward."""

    @staticmethod
    def forward(ctx, x: Tensor, surrogate: "Surrogate") -> Tensor:  # type: ignore[override]
        if x.requires_grad:
            ctx.save_for_backward(x)
            ctx.surrogate = surrogate
        return heaviside(x)

    @staticmethod
    def backward(ctx, grad_output: Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad_output * ctx.surrogate.grad(x), None


class Surrogate:
    """Base class: a spike function whose gradient is ``d primitive / dx``.

    Subclasses define :meth:`primitive` and its exact derivative :meth:`grad`.
    Calling the object on ``x = H - V_th`` returns the spikes.
    """

    name: str = ""

    def __init__(self, alpha: float) -> None:
        if not (isinstance(alpha, (int, float)) and alpha > 0 and math.isfinite(alpha)):
            raise ValueError(f"{type(self).__name__}: alpha must be a positive finite number, got {alpha!r}")
        self.alpha = float(alpha)

    def primitive(self, x: Tensor) -> Tensor:
        """The smooth step whose derivative is the surrogate gradient."""
        raise NotImplementedError

    def grad(self, x: Tensor) -> Tensor:
        """``d primitive(x) / dx``: the gradient used for ``dS/dH``."""
        raise NotImplementedError

    def __call__(self, x: Tensor) -> Tensor:
        return _SpikeFunction.apply(x, self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(alpha={self.alpha:g})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.alpha == self.alpha  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.alpha))


class Rectangle(Surrogate):
    """Rectangular window of width ``a`` (the paper's choice, ``a = 1``).

    ``dS/dH = (1/a) * 1(|H - V_th| < a/2)``; primitive ``clamp(x/a + 1/2, 0, 1)``.
    """

    name = "rectangle"

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__(alpha)

    def primitive(self, x: Tensor) -> Tensor:
        return torch.clamp(x / self.alpha + 0.5, 0.0, 1.0)

    def grad(self, x: Tensor) -> Tensor:
        inside = indicator(torch.lt, x.abs(), self.alpha / 2)
        return inside if self.alpha == 1.0 else inside.div_(self.alpha)


class Sigmoid(Surrogate):
    """``primitive = sigmoid(alpha x)``, ``grad = alpha s (1 - s)``."""

    name = "sigmoid"

    def __init__(self, alpha: float = 4.0) -> None:
        super().__init__(alpha)

    def primitive(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.alpha * x)

    def grad(self, x: Tensor) -> Tensor:
        s = torch.sigmoid(self.alpha * x)
        return self.alpha * s * (1 - s)


class ATan(Surrogate):
    """``primitive = 1/2 + atan(pi/2 alpha x) / pi``, ``grad = alpha / (2 (1 + (pi/2 alpha x)^2))``."""

    name = "atan"

    def __init__(self, alpha: float = 2.0) -> None:
        super().__init__(alpha)

    def primitive(self, x: Tensor) -> Tensor:
        return 0.5 + torch.atan(math.pi / 2 * self.alpha * x) / math.pi

    def grad(self, x: Tensor) -> Tensor:
        return self.alpha / 2 / (1 + (math.pi / 2 * self.alpha * x) ** 2)


class Triangle(Surrogate):
    """Triangular window of half-width ``a``: ``grad = max(0, 1 - |x|/a) / a``."""

    name = "triangle"

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__(alpha)

    def primitive(self, x: Tensor) -> Tensor:
        a = self.alpha
        y = torch.clamp(x / a, -1.0, 1.0)
        return torch.where(y < 0, 0.5 * (1 + y) ** 2, 1 - 0.5 * (1 - y) ** 2)

    def grad(self, x: Tensor) -> Tensor:
        return torch.clamp(1 - x.abs() / self.alpha, min=0.0) / self.alpha


class Tanh(Surrogate):
    """MPBN's surrogate (method.md, section 11): a ``tanh`` ramp of steepness ``alpha`` over a
    window of width 1 around the threshold,

    ``primitive = 1/2 + tanh(alpha x) / (2 tanh(alpha / 2))`` for ``|x| < 1/2`` (0 below, 1 above),
    ``grad = alpha (1 - tanh^2(alpha x)) / (2 tanh(alpha / 2))`` inside the window, 0 outside.

    With ``alpha = 3`` and ``x = H_n - 0.5`` this is the MPBN code's
    ``3 (1 - tanh^2(3 (u - 0.5))) / (2 tanh 1.5)`` on ``u = H_n / V_th``, ``0 < u < 1``, at ``V_th = 1``.
    """

    name = "tanh"

    def __init__(self, alpha: float = 3.0) -> None:
        super().__init__(alpha)

    def primitive(self, x: Tensor) -> Tensor:
        scale = 2 * math.tanh(self.alpha / 2)
        return 0.5 + torch.tanh(self.alpha * torch.clamp(x, -0.5, 0.5)) / scale

    def grad(self, x: Tensor) -> Tensor:
        t = torch.tanh(self.alpha * x)
        inside = indicator(torch.lt, x.abs(), 0.5)
        return inside.mul_(1 - t * t).mul_(self.alpha / (2 * math.tanh(self.alpha / 2)))


SURROGATES: dict[str, type[Surrogate]] = {
    cls.name: cls for cls in (Rectangle, Sigmoid, ATan, Triangle, Tanh)
}


def get_surrogate(surrogate: "str | Surrogate", alpha: float | None = None) -> Surrogate:
    """Return a :class:`Surrogate` from a name (``"rectangle"``, ``"sigmoid"``,
    ``"atan"``, ``"triangle"``, ``"tanh"``) or pass an instance through unchanged."""
    if isinstance(surrogate, Surrogate):
        if alpha is not None:
            raise ValueError("alpha can only be given together with a surrogate name, not an instance")
        return surrogate
    if not isinstance(surrogate, str) or surrogate.lower() not in SURROGATES:
        raise ValueError(
            f"unknown surrogate {surrogate!r}; expected one of {sorted(SURROGATES)} or a Surrogate instance"
        )
    cls = SURROGATES[surrogate.lower()]
    return cls() if alpha is None else cls(alpha)
