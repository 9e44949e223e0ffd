"""The Triton kernels compile for a real GPU target (sm_90: TTIR -> PTX -> cubin with the ptxas that ships
in the triton wheel), no GPU needed. The interpreter tests check the maths; this checks that the
compiler accepts the same source, for the spec and option variants that specialise the most code."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = r"""
import inspect, sys, torch, triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from lstmkit.kernels.gpu.adjoint import step_backward
from lstmkit.kernels.gpu.plan import Plan
from lstmkit.kernels.gpu.pointwise import step_forward
from lstmkit.spec import CellSpec

def compile_one(kernel, consts, cdt, hdt):
    sig = {}
    for name in inspect.signature(kernel.fn).parameters:
        if name in consts:
            sig[name] = "constexpr"
        elif name in ("zx_ptr", "rec_ptr", "h_prev_ptr", "h_ptr", "m_ptr"):
            sig[name] = hdt
        elif name == "valid_ptr":
            sig[name] = "*i8"
        else:
            sig[name] = cdt if name.endswith("_ptr") else "i32"
    constexprs = {(kernel.arg_names.index(k),): v for k, v in consts.items()}
    return triton.compile(ASTSource(fn=kernel, signature=sig, constexprs=constexprs), target=GPUTarget("cuda", 90, 32))

cases = [  # (spec, projection, zoneout: 1 masks / 2 expectation, padded, compute dtype, h dtype)
    (CellSpec(peephole=True, full_gate_recurrence=True, layer_norm=True, cell_clip=1.0,
              gate_activation="hard_sigmoid", candidate_activation="softsign", cell_activation="relu"),
     True, 1, True, torch.float32, "*bf16"),
    (CellSpec(coupled=True, peephole=True, output_gate=False), False, 2, True, torch.float64, "*fp64"),
]
for spec, proj, zone, padded, cdt, hdt in cases:
    keep = 0.1 if zone == 2 else None
    plan = Plan(spec, 512, proj=proj, zc_keep=keep, zh_keep=keep, padded=padded)
    consts = plan.constexprs(cdt, zone == 1, zone == 1)
    ptr = "*fp64" if cdt == torch.float64 else "*fp32"
    fwd = compile_one(step_forward, {**consts, "FGR": spec.full_gate_recurrence}, ptr, hdt)
    bwd = compile_one(step_backward, {**consts, "HAS_DACTS": True}, ptr, hdt)
    assert len(fwd.asm["cubin"]) > 0 and len(bwd.asm["cubin"]) > 0
print("compiled", 2 * len(cases))
"""


def test_kernels_compile_for_sm90() -> None:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}  # the real compiler, not the interpreter
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["compiled", "4"]
