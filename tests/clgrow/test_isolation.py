"""clgrow is usable with PyTorch alone."""

from __future__ import annotations

import subprocess
import sys


def test_clgrow_imports_and_grows_without_avalanche():
    code = (
        "import sys; sys.modules['avalanche'] = None\n"
        "import torch, clgrow\n"
        "from torch.utils.data import TensorDataset, DataLoader\n"
        "m = clgrow.GrowableMLP(4, [3, 3], 2)\n"
        "dl = DataLoader(TensorDataset(torch.randn(16, 4), torch.randint(0, 2, (16,))), batch_size=8)\n"
        "r = clgrow.grow(m, 4, dl)\n"
        "assert sum(m.hidden_sizes) == 10, m.hidden_sizes\n"
        "assert not any(k.startswith('avalanche') and sys.modules[k] for k in sys.modules)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
