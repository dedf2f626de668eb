"""Reading the YAML a user wrote: no key twice, JSON types only, UTF-8, one-line errors."""

import pytest

from prunetune.errors import ConfigError
from prunetune.user_yaml import parse_yaml, read_yaml


@pytest.mark.parametrize("text", ["a: 1\nb: 2\na: 3\n", "{a: 1, b: 2, a: 3}", "x:\n  a: 1\n  b: 2\n  a: 3\n"])
def test_a_key_given_twice_is_refused_naming_both_lines(text):
    with pytest.raises(ConfigError, match=r"at line \d, column \d+: key 'a' is given twice \(first on line \d\)"):
        parse_yaml(text, "job")


def test_a_key_that_overrides_a_merged_mapping_is_not_a_duplicate():
    assert parse_yaml("base: &b {lr: 1, epochs: 2}\nrun:\n  <<: *b\n  lr: 3\n", "job")["run"] == {"lr": 3, "epochs": 2}


def test_dates_stay_text_and_types_json_lacks_are_refused():
    assert parse_yaml("name: 2024-05-01", "job") == {"name": "2024-05-01"}
    for text in ("x: !!binary aGVsbG8=", "x: !!set {a, b}", "x: !!timestamp 2024-05-01"):
        with pytest.raises(ConfigError, match="value has no place in a config"):
            parse_yaml(text, "job")


def test_a_syntax_error_is_one_line_naming_the_source_line_and_column():
    with pytest.raises(ConfigError) as caught:
        parse_yaml("name: x\nrecovery:\n  lr: [1, 2\n  epochs: 3\n", "config file 'job.yaml'")
    assert str(caught.value) == ("invalid config - config file 'job.yaml' is not valid YAML at line 4, column 9: "
                                 "expected ',' or ']', but got ':'")


@pytest.mark.parametrize("content", [b"name: caf\xe9\n", bytes(range(256))], ids=["latin-1", "binary"])
def test_a_file_that_is_not_utf8_is_refused_naming_it(tmp_path, content):
    path = tmp_path / "job.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=rf"config file '{path}' is not UTF-8 text \(byte 0x[0-9a-f]{{2}} at offset"):
        read_yaml(path)


def test_a_byte_order_mark_and_an_empty_file_are_fine(tmp_path):
    (tmp_path / "bom.yaml").write_bytes("\ufeffname: x\n".encode())
    (tmp_path / "empty.yaml").write_text("")
    assert read_yaml(tmp_path / "bom.yaml") == {"name": "x"} and read_yaml(tmp_path / "empty.yaml") == {}
    with pytest.raises(ConfigError, match="is not a file"):
        read_yaml(tmp_path)
