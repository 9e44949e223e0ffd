"""Recurrent families beyond the LSTM of §1: sLSTM and mLSTM (Beck et al. 2024, xLSTM) and
minLSTM (Feng et al. 2024), each as its equations, its state tuple, a reference step (the oracle)
and a layer over time, in plain differentiable PyTorch.

=========  ==========================================  ===========================================
family     state                                       forms of a layer
=========  ==========================================  ===========================================
sLSTM      (h, c, n, m), each (B, H)                   recurrent
mLSTM      (C (B, NH, DH, DH), n (B, NH, DH), m (B, NH))  recurrent, parallel, chunkwise
minLSTM    (h,), (B, H)                                sequential, log-space parallel scan
=========  ==========================================  ===========================================
"""

from .common import FamilyTrace
from .minlstm import MinLSTMSpec, MinLSTMState, minlstm_layer, minlstm_scan, minlstm_step
from .mlstm import MLSTMSpec, MLSTMState, mlstm_chunkwise, mlstm_layer, mlstm_parallel, mlstm_step
from .slstm import SLSTMSpec, SLSTMState, slstm_layer, slstm_step

__all__ = [
    "FamilyTrace",
    "MLSTMSpec",
    "MLSTMState",
    "MinLSTMSpec",
    "MinLSTMState",
    "SLSTMSpec",
    "SLSTMState",
    "minlstm_layer",
    "minlstm_scan",
    "minlstm_step",
    "mlstm_chunkwise",
    "mlstm_layer",
    "mlstm_parallel",
    "mlstm_step",
    "slstm_layer",
    "slstm_step",
]
