"""ExecuTorch, drop-in: ``torch.export`` then ``to_edge_transform_and_lower`` for every preset.

The user's flow, unchanged: export the model (one ``lstmkit::recurrence`` node per layer-direction),
lower it with the XNNPACK partitioner and without one (portable kernels), run the program in
``executorch.runtime`` and compare with eager PyTorch. Every distinct preset, with a projection and
two layers, runs inside one module so that each lowering happens once. The lowering itself
(:func:`lstmkit.kernels.compiled.lowering.recurrence_steps`) is also compared with the op directly,
masks and lengths included, without ExecuTorch.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
from torch.export import Dim

import lstmkit
from lstmkit import PRESETS
from lstmkit.kernels.compiled import ops
from lstmkit.kernels.compiled.lowering import recurrence_steps

SPECS = sorted({spec: name for name, spec in PRESETS.items()}.values())  # one name per distinct spec
I, H, P, B, T = 3, 5, 4, 2, 3
RECURRENCE = torch.ops.lstmkit.recurrence.default


def _states(model: lstmkit.LSTM, g: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Random initial states of the model's own state tuple ((h, c), or (h, c, g) under FGR)."""
    LD = model.num_layers * model.num_directions
    sizes = [P, H] + ([len(model.spec.sigmoid_gates) * H] if model.spec.full_gate_recurrence else [])
    return tuple(torch.randn(LD, B, n, generator=g) for n in sizes)


def _layout(model: EveryPreset) -> list[tuple[str, int, int, int]]:
    """(preset, first state input, first output, state length) of each LSTM in the module's flat tuples."""
    rows, k_in, k_out = [], 1, 0
    for name, m in model.models.items():
        n = 3 if m.spec.full_gate_recurrence else 2
        rows.append((name, k_in, k_out, n))
        k_in, k_out = k_in + n, k_out + n + 1
    return rows


class EveryPreset(torch.nn.Module):
    """Every distinct preset, two layers with projection, each with its own initial states as inputs."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.models = torch.nn.ModuleDict(
            {s: lstmkit.LSTM(I, H, num_layers=2, proj_size=P, spec=s, batch_first=True) for s in SPECS}
        )

    def forward(self, x: torch.Tensor, *flat: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out: list[torch.Tensor] = []
        k = 0
        for model in self.models.values():
            n = 3 if model.spec.full_gate_recurrence else 2
            y, state = model(x, tuple(flat[k : k + n]))
            out += [y, *state]
            k += n
        return tuple(out)


@pytest.fixture(scope="module")
def case() -> tuple[EveryPreset, tuple[torch.Tensor, ...], tuple[torch.Tensor, ...], Any]:
    model = EveryPreset().eval()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(B, T, I, generator=g)
    inputs = (x, *(s for m in model.models.values() for s in _states(m, g)))
    with torch.no_grad():
        expected = model(*inputs)
    program = torch.export.export(model, inputs)
    return model, inputs, expected, program


def _run_pte(buffer: bytes, inputs: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
    from executorch.runtime import Runtime

    return list(Runtime.get().load_program(buffer).load_method("forward").execute(list(inputs)))


def test_export_keeps_one_node_per_layer(case: Any, compiled_kernel: object) -> None:
    model, _, _, program = case
    nodes = [n for n in program.graph.nodes if n.target == RECURRENCE]
    assert len(nodes) == 2 * len(model.models), "one lstmkit::recurrence node per layer before lowering"


@pytest.mark.parametrize("backend", ["portable", "xnnpack"])
def test_every_preset_lowers_and_runs_equal_to_eager(backend: str, case: Any, compiled_kernel: object) -> None:
    pytest.importorskip("executorch", reason="the ExecuTorch extra (pip install 'lstmkit[edge]')")
    from executorch.exir import to_edge_transform_and_lower

    model, inputs, expected, program = case
    partitioner = None
    if backend == "xnnpack":
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

        partitioner = [XnnpackPartitioner()]
    edge = to_edge_transform_and_lower(program, partitioner=partitioner)
    left = [n for n in edge.exported_program().graph.nodes if "lstmkit" in str(n.target)]
    assert not left, f"the recurrence must decompose into standard ops; left: {left}"
    got = _run_pte(edge.to_executorch().buffer, inputs)
    assert len(got) == len(expected)
    for name, _, k, n in _layout(model):
        names = ("output", "h_n", "c_n", "g_n")[: n + 1]
        for what, a, b in zip(names, got[k : k + n + 1], expected[k : k + n + 1], strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=0, msg=lambda m, s=f"{name} {what}": f"{s}: {m}")


def test_vanilla_program_equals_torch_nn_lstm(case: Any, compiled_kernel: object) -> None:
    """An independent reference: torch.nn.LSTM with the same weights, against the decomposed program
    run in PyTorch (the program ExecuTorch receives)."""
    model, inputs, _, program = case
    decomposed = program.run_decompositions()
    assert not [n for n in decomposed.graph.nodes if n.target == RECURRENCE]
    got = decomposed.module()(*inputs)
    plain, k_in, k_out, _ = next(row for row in _layout(model) if model.models[row[0]].spec.is_plain)
    ref = torch.nn.LSTM(I, H, num_layers=2, proj_size=P, batch_first=True)
    ref.load_state_dict(model.models[plain].state_dict())
    with torch.no_grad():
        out, (h, c) = ref(inputs[0], (inputs[k_in], inputs[k_in + 1]))
    for a, b in zip(got[k_out : k_out + 3], (out, h, c), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_symbolic_length_keeps_the_node_with_a_warning(compiled_kernel: object) -> None:
    model = lstmkit.LSTM(I, H, spec="peephole").eval()
    program = torch.export.export(model, (torch.randn(4, B, I),), dynamic_shapes=({0: Dim("T", min=2)},))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        decomposed = program.run_decompositions()
    assert any("static T" in str(w.message) for w in caught)
    assert [n for n in decomposed.graph.nodes if n.target == RECURRENCE]


def test_empty_table_and_compile_keep_the_op(compiled_kernel: object) -> None:
    """run_decompositions({}) (what ExecuTorch runs first) keeps the op; so does torch.compile."""
    model = lstmkit.LSTM(I, H, spec="cifg").eval()
    x = torch.randn(4, B, I)
    kept = torch.export.export(model, (x,)).run_decompositions({})
    assert [n for n in kept.graph.nodes if n.target == RECURRENCE]
    torch.testing.assert_close(kept.module()(x)[0], model(x)[0], atol=1e-6, rtol=0)


@pytest.mark.parametrize("spec", SPECS)
def test_lowering_equals_the_op(spec: str, compiled_kernel: object) -> None:
    """recurrence_steps against the C++ op, float64, with lengths, zoneout masks, a recurrent mask and
    a cell clip: hs and cs everywhere, the gate activations at valid steps."""
    from lstmkit.kernels.compiled import _config

    s = lstmkit.CellSpec.preset(spec)
    if s.is_plain:
        s = s.replace(cell_clip=0.5)
    g = torch.Generator().manual_seed(2)
    Tn, Bn, Hn, G, n = 5, 3, 4, s.num_gates, len(s.sigmoid_gates)

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    zx, h0, c0, w_hh, w_hr = r(Tn, Bn, G * Hn), r(Bn, 3), r(Bn, Hn), r(G * Hn, 3), r(3, Hn)
    w_ch = r(n * Hn) if s.peephole else None
    w_gg = r(n * Hn, n * Hn) if s.full_gate_recurrence else None
    ln = (1 + 0.1 * r(G * Hn), 1 + 0.1 * r(Hn), 0.1 * r(Hn)) if s.layer_norm else (None, None, None)
    rec_mask = (torch.rand(Bn, 3, generator=g, dtype=torch.float64) > 0.3).double()
    zc_mask = (torch.rand(Tn, Bn, Hn, generator=g, dtype=torch.float64) > 0.5).double()
    lengths = torch.tensor([5, 2, 0])
    args = (zx, h0, c0, w_hh, w_hr, w_ch, w_gg, *ln, rec_mask, zc_mask, None, lengths)
    opts = (_config(s, Hn), -1.0 if s.cell_clip is None else s.cell_clip, -1.0, 0.25)
    with torch.no_grad():
        want = ops.recurrence(*args, *opts)
        got = recurrence_steps(*args, *opts)
    torch.testing.assert_close(got[0], want[0], atol=1e-12, rtol=0)
    torch.testing.assert_close(got[1], want[1], atol=1e-12, rtol=0)
    valid = (torch.arange(Tn).unsqueeze(1) < lengths).unsqueeze(-1)
    torch.testing.assert_close(got[2] * valid, want[2] * valid, atol=1e-12, rtol=0)
