"""`prunetune export` on a damaged checkpoint or an output it cannot write: exit 2, one line, nothing written."""

import struct
import sys

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from prunetune.cli import app
from prunetune.home import CHECKPOINT_MODEL, STORE_NAME
from prunetune.results.store import journal_path
from tests.planted import Planted
from tests.results.homes import write_kept_step

runner = CliRunner()


@pytest.fixture
def home(tmp_path):
    """A search home as the driver leaves it (search.json with its space as data, the store) with one kept step."""
    return tmp_path, write_kept_step(tmp_path)


def _export(root, output, *extra):
    return runner.invoke(app, ["export", "s", "--trial", "0", "--step", "1", "-o", str(output),
                               "--storage", str(root), *extra])


def _one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output
    for fragment in fragments:
        assert fragment in result.output


def test_a_kept_step_exports_and_its_path_is_printed_as_written(home, tmp_path):
    root, _ = home
    result = _export(root, tmp_path / "[v1]" / "model.pt")  # Rich markup would drop "[v1]"
    assert result.exit_code == 0, result.output
    assert (tmp_path / "[v1]" / "model.pt").is_file()
    assert result.output.startswith(f"wrote {tmp_path / '[v1]' / 'model.pt'}: trial 0 step 1")
    # A home whose search.json predates the recorded deployment info: measured from its data now.
    metadata = torch.load(tmp_path / "[v1]" / "model.pt", weights_only=False)["metadata"]
    assert metadata["class_names"] == [str(digit) for digit in range(10)]
    assert [step["op"] for step in metadata["preprocessing"]] == ["convert", "resize", "to_tensor", "normalize"]


# Each is what torch.load raises on such a file: MemoryError (a length read from garbage asks for
# 2**62 bytes: pickle's BINBYTES8), RuntimeError (not a zip), UnpicklingError (a bad opcode), EOFError (empty).
DAMAGED = {"huge-length": b"\x8e" + struct.pack("<Q", 2**62), "not-a-zip": b"PK\x03\x04garbage",
           "bad-opcode": b"\x00\x01garbage", "empty": b""}


@pytest.mark.parametrize("content", DAMAGED.values(), ids=DAMAGED.keys())
def test_a_damaged_checkpoint_exits_2_naming_the_file(home, tmp_path, content):
    root, model_file = home
    model_file.write_bytes(content)
    result = _export(root, tmp_path / "model.pt")
    _one_line_error(result, f"{model_file} is not a readable pruned model (damaged or another kind of file)")
    assert not (tmp_path / "model.pt").exists()


def test_an_output_under_a_file_or_naming_a_folder_exits_2_before_loading(home, tmp_path):
    root, _ = home
    (tmp_path / "taken.pt").write_text("x")
    (tmp_path / "folder").mkdir()
    _one_line_error(_export(root, tmp_path / "taken.pt" / "deeper" / "model.pt"),
                    f"{tmp_path / 'taken.pt'} is a file, not a folder")
    _one_line_error(_export(root, tmp_path / "folder"), "it is a folder; name the file to write")
    (tmp_path / "program.pt2").mkdir()
    _one_line_error(_export(root, tmp_path / "program.pt", "--pt2"), "program.pt2, is a folder")


@pytest.mark.skipif(sys.platform != "linux", reason="/sys refuses writes, even root's, on Linux only")
def test_an_unwritable_output_folder_exits_2_naming_it(home):
    root, _ = home
    _one_line_error(_export(root, "/sys/prunetune-model.pt"), "cannot export to /sys/prunetune-model.pt: /sys is not "
                    "writable (Permission denied)")


def test_a_journal_line_that_is_not_a_row_is_one_warning_line_and_the_export_goes_on(home, tmp_path):
    root, _ = home
    journal_path(root / "s" / STORE_NAME).write_text('{"note": "hand edit"}\n')
    result = _export(root, tmp_path / "model.pt")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == (f"warning: {journal_path(root / 's' / STORE_NAME)}: line 1 is not a "
                                             "results row (no trial_id or step); skipped")


@pytest.mark.parametrize("how", ["store-points-out", "symlink-out"])
def test_a_checkpoint_outside_the_search_is_refused_and_nothing_is_unpickled(home, tmp_path, how):
    root, model_file = home
    planted = tmp_path / "elsewhere" / CHECKPOINT_MODEL
    planted.parent.mkdir()
    torch.save(Planted(tmp_path / "code-ran"), planted)
    if how == "store-points-out":
        store = root / "s" / STORE_NAME
        rows = pd.read_parquet(store).assign(checkpoint=str(planted.parent))
        rows.to_parquet(store)
    else:
        model_file.unlink()
        model_file.symlink_to(planted)
    result = _export(root, tmp_path / "model.pt")
    _one_line_error(result, "is outside the search's experiment folder")
    assert not (tmp_path / "code-ran").exists() and not (tmp_path / "model.pt").exists()
