"""`prunetune export RUN_DIR` on a `prunetune run` over an ImageFolder tree the test writes: a deployer
feeds the .pt2 from its metadata alone (class names, preprocessing) and gets the recorded accuracy."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from prunetune.cli import app
from prunetune.config import load_config
from prunetune.data import build_splits

runner = CliRunner()
CLASSES = ("cat", "dog", "zebra crossing")  # ImageFolder's labels: the folder names, sorted
JOB = """
name: folder
model: {{name: tiny_cnn}}
data: {{name: imagefolder, root: '{root}', image_size: 16, batch_size: 12, calibration_size: 12, num_workers: 0}}
baseline: {{epochs: 4, lr: 0.1}}
pruning: {{scope: all, schedule: {{kind: targets, targets: [0.2, 0.4]}}}}
recovery: {{epochs: 1, optimizer: sgd, lr: 0.01}}
stop: {{max_accuracy_drop: null, min_accuracy: 0.0}}
storage: {{root: '{storage}'}}
runtime: {{threads: 1}}
"""


def _image_tree(root):
    """Non-square PNGs (30 x 24) whose class shows in their colour, so the model learns something."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 16), ("val", 8)):
        for label, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for index in range(count):
                pixels = rng.integers(0, 120, (24, 30, 3))
                pixels[..., label] += 120
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{index:02d}.png")


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """A `prunetune run` through the CLI: its directory, the printed output and the job."""
    base = tmp_path_factory.mktemp("export-run")
    _image_tree(base / "images")
    config = base / "job.yaml"
    config.write_text(textwrap.dedent(JOB.format(root=base / "images", storage=base / "runs")))
    result = runner.invoke(app, ["run", str(config), "--dir", str(base / "run")])
    assert result.exit_code == 0, result.output
    return base / "run", result.output, load_config(config)


# The deployer's side: torch and PIL only, every step read from the metadata.
DEPLOYER = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import torch
    from PIL import Image

    files = {"metadata.json": ""}
    model = torch.export.load(sys.argv[1], extra_files=files).module()
    metadata = json.loads(files["metadata.json"])

    def prepare(path):
        image = Image.open(path)
        for step in metadata["preprocessing"]:
            if step["op"] == "convert":
                image = image.convert(step["mode"])
            elif step["op"] == "resize":
                assert step["interpolation"] == "bilinear"
                width, height = image.size
                short = step["shorter_side"]
                size = (short, int(short * height / width)) if width <= height else (int(short * width / height), short)
                image = image.resize(size, Image.BILINEAR)
            elif step["op"] == "center_crop":
                height, width = step["size"]
                left, top = round((image.size[0] - width) / 2), round((image.size[1] - height) / 2)
                image = image.crop((left, top, left + width, top + height))
            elif step["op"] == "to_tensor":
                pixels = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
                x = pixels.view(image.size[1], image.size[0], -1).permute(2, 0, 1).float() * step["scale"]
            elif step["op"] == "normalize":
                x = (x - torch.tensor(step["mean"]).view(-1, 1, 1)) / torch.tensor(step["std"]).view(-1, 1, 1)
        return x

    val = Path(sys.argv[2])
    names = metadata["class_names"]
    images, labels = [], []
    for label, name in enumerate(names):
        for path in sorted((val / name).iterdir()):
            images.append(prepare(path))
            labels.append(label)
    with torch.no_grad():
        logits = model(torch.stack(images))
    accuracy = (logits.argmax(1) == torch.tensor(labels)).float().mean().item()
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("prunetune", "torch_pruning", "ray", "optuna"))
    print(json.dumps({"accuracy": accuracy, "logits": logits.tolist(), "loaded": loaded, "metadata": metadata}))
""")


def test_a_run_directory_exports_its_best_step_and_a_deployer_reproduces_its_accuracy_from_the_metadata(ran, tmp_path):
    directory, _, job = ran
    result = runner.invoke(app, ["export", str(directory), "-o", str(tmp_path / "model.pt"), "--pt2"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"wrote {tmp_path / 'model.pt'}: step 2 (best) of run {directory}")
    done = subprocess.run([sys.executable, "-c", DEPLOYER, str(tmp_path / "model.pt2"), str(job.data.root) + "/val"],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    deployed = json.loads(done.stdout)
    metadata = deployed["metadata"]
    assert deployed["loaded"] == []  # torch and PIL alone
    assert metadata["class_names"] == list(CLASSES)
    assert (metadata["source"], metadata["step"], metadata["kept_as"]) == ("run", 2, "best")
    assert metadata["input"] == {"shape": ["batch", 3, 16, 16], "dtype": "float32", "layout": "NCHW", "color": "RGB"}
    assert deployed["accuracy"] == pytest.approx(metadata["metrics"]["accuracy"], abs=1e-6)
    assert metadata["metrics"]["accuracy"] > 1 / len(CLASSES)  # a model that learned the colours, not a constant
    # The same logits as prunetune's own evaluation transform gives: the metadata describes it exactly.
    model = torch.load(tmp_path / "model.pt", weights_only=False)
    val = build_splits(job.data, job.seed).val
    expected = model["model"](torch.stack([val[index][0] for index in range(len(val))])).detach()
    assert torch.allclose(torch.tensor(deployed["logits"]), expected, atol=1e-4)
    assert {key: model["metadata"][key] for key in ("class_names", "preprocessing", "input", "output")} == \
        {key: metadata[key] for key in ("class_names", "preprocessing", "input", "output")}


def test_a_run_exports_only_the_steps_it_kept_and_says_which(ran, tmp_path):
    directory, _, _ = ran
    kept = runner.invoke(app, ["export", str(directory), "--step", "2", "-o", str(tmp_path / "two.pt")])
    assert kept.exit_code == 0, kept.output
    assert torch.load(tmp_path / "two.pt", weights_only=False)["metadata"]["step"] == 2
    missing = runner.invoke(app, ["export", str(directory), "--step", "1", "-o", str(tmp_path / "one.pt")])
    assert missing.exit_code == 2 and len(missing.output.strip().splitlines()) == 1, missing.output
    assert "step 1's model was not kept; a run keeps its best feasible step (best.pt) and its last step " \
           "(last.pt): best.pt: step 2, last.pt: step 2" in missing.output
    trial = runner.invoke(app, ["export", str(directory), "--trial", "0", "-o", str(tmp_path / "t.pt")])
    assert trial.exit_code == 2 and "is a `prunetune run` directory (one run, no trials): drop --trial" in trial.output
    assert not (tmp_path / "one.pt").exists() and not (tmp_path / "t.pt").exists()


def test_a_run_prints_one_format_per_column_and_how_to_export_it(ran):
    directory, output, _ = ran
    rows = [line.split("│")[1:-1] for line in output.splitlines() if line.startswith("│")]
    columns = [[cell.strip() for cell in column] for column in zip(*rows)]
    target, sparsity, pre, accuracy, macs, ratio, params = columns[1:8]
    assert all(cell.endswith("%") and len(cell.split(".")[1]) == 2 for cell in target + sparsity + ratio)
    assert all(len(cell.split(".")[1]) == 4 for cell in accuracy + [c for c in pre if c])
    for counts in (macs, params):  # one unit per column, two decimals
        assert len({cell[-1] for cell in counts}) == 1 and all(len(cell[:-1].split(".")[1]) == 2 for cell in counts)
    assert f"export it: prunetune export {directory} -o model.pt --pt2" in output
