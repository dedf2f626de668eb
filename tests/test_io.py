"""Content digests of user files: hashed once per version, never trusted past a change."""

import hashlib
import json
import os

from prunetune import io
from prunetune.io import file_digest


def test_a_file_rewritten_with_its_size_and_mtime_kept_gets_its_new_digest(tmp_path):
    memo, weights = tmp_path / "digests.json", tmp_path / "model.pt"
    weights.write_bytes(b"a" * 64)
    before = weights.stat()
    assert file_digest(weights, memo) == hashlib.sha256(b"a" * 64).hexdigest()
    weights.write_bytes(b"b" * 64)
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert file_digest(weights, memo) == hashlib.sha256(b"b" * 64).hexdigest()


def test_an_unchanged_file_is_not_read_again(tmp_path, monkeypatch):
    monkeypatch.setattr(io, "RACY_NS", -1)  # remember even a file written just now
    memo, weights = tmp_path / "digests.json", tmp_path / "model.pt"
    weights.write_bytes(b"weights")
    file_digest(weights, memo)
    remembered = json.loads(memo.read_text())
    remembered[str(weights.resolve())]["sha256"] = "remembered"
    memo.write_text(json.dumps(remembered))
    assert file_digest(weights, memo) == "remembered"


def test_no_memo_is_written_where_its_folder_does_not_exist(tmp_path, monkeypatch):
    monkeypatch.setattr(io, "RACY_NS", -1)
    weights = tmp_path / "model.pt"
    weights.write_bytes(b"weights")
    assert file_digest(weights, tmp_path / "absent" / "digests.json") == hashlib.sha256(b"weights").hexdigest()
    assert not (tmp_path / "absent").exists()
