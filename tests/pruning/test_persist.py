import subprocess
import sys
import textwrap

import pytest
import torch
import torchvision

from prunetune.config import load_config
from prunetune.errors import ModelError
from prunetune.pruning.persist import load_pruned, save_pruned
from prunetune.pruning.pruner import Pruner


def test_a_pruned_model_loads_in_a_fresh_process_without_torch_pruning(tmp_path):
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).eval()
    Pruner(model, torch.randn(1, 3, 32, 32), load_config(None, ["pruning.scope=all"]).pruning).step(0.5)
    x = torch.randn(2, 3, 32, 32)
    torch.save(x, tmp_path / "x.pt")
    with torch.no_grad():
        torch.save(model(x), tmp_path / "y.pt")
    save_pruned(model, tmp_path / "pruned.pt", {"sparsity": 0.5})
    script = textwrap.dedent(f"""
        import sys, torch
        payload = torch.load({str(tmp_path / 'pruned.pt')!r}, weights_only=False)
        model = payload["model"]
        with torch.no_grad():
            same = torch.allclose(model(torch.load({str(tmp_path / 'x.pt')!r})), torch.load({str(tmp_path / 'y.pt')!r}), atol=1e-5)
        print(same, payload["metadata"]["sparsity"], "torch_pruning" in sys.modules,
              any(name.startswith("prunetune") for name in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "0.5", "False", "False"]


def test_load_pruned_round_trip_and_clear_errors(tmp_path):
    from prunetune.models.zoo import tiny_mobilenet

    model = tiny_mobilenet(10, width=8).eval()
    Pruner(model, torch.randn(1, 3, 32, 32), load_config(None).pruning).step(0.4)
    loaded = load_pruned(save_pruned(model, tmp_path / "m.pt", {"step": 2}))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), model(x))
    assert loaded.metadata == {"step": 2} and not loaded.model.training
    with pytest.raises(ModelError, match="not found"):
        load_pruned(tmp_path / "missing.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ModelError, match="not a prunetune pruned model"):
        load_pruned(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ModelError, match="not a readable pruned model"):
        load_pruned(tmp_path / "junk.pt")
