"""sLSTM and mLSTM as modules in the toolchain: whole-module pickling (weights-only load) and deepcopy."""
import pytest
import torch

from lstmkit.xlstm import mLSTM, sLSTM


@pytest.mark.parametrize("cls", [sLSTM, mLSTM])
def test_whole_module_pickle_loads_weights_only(cls, tmp_path):
    import copy

    m = cls(4, 8, num_heads=2, num_layers=2)
    x = torch.randn(5, 2, 4)
    torch.save(m, tmp_path / "m.pt")
    with torch.serialization.safe_globals([cls]):
        m2 = torch.load(tmp_path / "m.pt", weights_only=True)
    torch.testing.assert_close(m2(x)[0], m(x)[0], rtol=0, atol=0)
    assert m2.specs == m.specs
    torch.testing.assert_close(copy.deepcopy(m)(x)[0], m(x)[0], rtol=0, atol=0)
