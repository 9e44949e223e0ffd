"""Parametric forecast heads: the model emits, per horizon step, the parameters of a distribution
of the (normalised) target; training minimises its negative log-likelihood; intervals and the
point forecast are its quantiles.

Per step the head emits P raw numbers r; with softplus(x) = log(1 + e^x):

- ``normal`` (P = 2): mean ``mu = r_0``, scale ``sigma = softplus(r_1) + 1e-3``;
  ``-log p(y) = log sigma + (y - mu)^2 / (2 sigma^2) + log(2 pi) / 2``; quantile
  ``mu + sigma Phi^{-1}(q)``.
- ``studentt`` (P = 3): ``mu``, ``sigma`` as above and degrees of freedom ``nu = 2.05 + softplus(r_2)``
  (finite variance, heavy tails for outliers);
  ``-log p(y) = -lgamma((nu+1)/2) + lgamma(nu/2) + log(nu pi) / 2 + log sigma
  + (nu+1)/2 log(1 + ((y - mu) / sigma)^2 / nu)``; quantile ``mu + sigma t_nu^{-1}(q)``, with
  ``t_nu^{-1}`` by Hill's algorithm 396 (Comm. ACM 13(10), 1970; relative error under 1e-3 for
  nu >= 2.05, far less for larger nu).

Shapes: raw (B, H, P); y (B, H); levels (Q,); quantiles (B, H, Q).

Example::

    >>> raw = torch.zeros(1, 2, 2)                          # mu 0, sigma softplus(0) + 1e-3
    >>> quantiles(raw, [0.5, 0.9], "normal")[0, 0]           # doctest: +ELLIPSIS
    tensor([0.0000, 0.889...])
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn.functional import softplus

PARAMETERS: dict[str, int] = {"normal": 2, "studentt": 3}
"""Raw outputs per horizon step of each distribution head."""


def _parts(raw: Tensor, kind: str) -> tuple[Tensor, Tensor, Tensor | None]:
    mu, sigma = raw[..., 0], softplus(raw[..., 1]) + 1e-3
    nu = 2.05 + softplus(raw[..., 2]) if kind == "studentt" else None
    return mu, sigma, nu


def nll(raw: Tensor, y: Tensor, kind: str) -> Tensor:
    """Mean negative log-likelihood of ``y`` (B, H) under the head's distribution (module docstring)."""
    mu, sigma, nu = _parts(raw, kind)
    z = (y - mu) / sigma
    if nu is None:
        out = torch.log(sigma) + 0.5 * z**2 + 0.5 * math.log(2 * math.pi)
    else:
        out = (-torch.lgamma((nu + 1) / 2) + torch.lgamma(nu / 2) + 0.5 * torch.log(nu * math.pi)
               + torch.log(sigma) + (nu + 1) / 2 * torch.log1p(z**2 / nu))  # fmt: skip
    return out.mean()


def t_upper(p: Tensor, nu: Tensor) -> Tensor:
    """x >= 0 with P(|T_nu| > x) = p (two-sided tail p in (0, 1]), elementwise (Hill 1970, alg. 396)."""
    a = 1 / (nu - 0.5)
    b = 48 / (a * a)
    c = ((20700 * a / b - 98) * a - 16) * a + 96.36
    d = ((94.5 / (b + c) - 3) / b + 1) * torch.sqrt(a * math.pi / 2) * nu
    y = (d * p) ** (2 / nu)
    z = torch.special.ndtri(p * 0.5)  # the normal deviate of the same tail, corrected below
    c1 = torch.where(nu < 5, c + 0.3 * (nu - 4.5) * (z + 0.6), c)
    c1 = (((0.05 * d * z - 5) * z - 7) * z - 2) * z + b + c1
    w = (((((0.4 * z * z + 6.3) * z * z + 36) * z * z + 94.5) / c1 - z * z - 3) / b + 1) * z
    big = torch.expm1(a * w * w)
    small = ((1 / (((nu + 6) / (nu * y) - 0.089 * d - 0.822) * (nu + 2) * 3) + 0.5 / (nu + 4)) * y - 1) * (nu + 1) / (
        nu + 2
    ) + 1 / y
    return torch.sqrt(nu * torch.where(y > 0.05 + a, big, small).clamp(min=0.0))


def quantiles(raw: Tensor, levels: list[float], kind: str) -> Tensor:
    """(B, H, P) raw head outputs -> (B, H, Q) quantiles at ``levels`` (ascending)."""
    mu, sigma, nu = _parts(raw, kind)
    q = torch.tensor(levels, dtype=raw.dtype, device=raw.device)  # (Q,)
    if nu is None:
        z = torch.special.ndtri(q).expand(*mu.shape, -1)
    else:
        tail = (2 * torch.minimum(q, 1 - q)).expand(*mu.shape, -1)
        z = torch.sign(q - 0.5) * t_upper(tail, nu.unsqueeze(-1).expand_as(tail))
    return mu.unsqueeze(-1) + sigma.unsqueeze(-1) * z
