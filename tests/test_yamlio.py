"""Reading YAML someone else wrote: the JSON fast path gives exactly what the YAML loader gives,
and everything hostile is still one ValueError with the reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from syft_core.jobs.markers import DoneMarker, Outcome, read_marker, write_marker
from syft_core.yamlio import dump_yaml_json, load_untrusted_yaml

SAMPLES = [
    {"by": "o@example.org", "at": "2026-12-03T15:00:00+00:00", "n": 3, "f": 0.5, "ok": True},
    {"nested": {"list": [1, "two", None, {"deep": False}]}, "unicode": "café ✓ \u202e"},
    {"on": "yes", "no": "off", "date": "2026-12-03"},  # YAML 1.1's booleans and dates, quoted
]


@pytest.mark.parametrize("data", SAMPLES)
def test_what_this_project_writes_reads_back_the_same_through_both_paths(
    data: dict[str, object],
) -> None:
    text = dump_yaml_json(data)
    assert load_untrusted_yaml(text.encode()) == data
    assert yaml.safe_load(text) == data  # other YAML readers (older versions, peers) agree


def test_a_marker_is_written_as_json_and_read_back(tmp_path: Path) -> None:
    marker = DoneMarker(by="o@example.org", outcome=Outcome.SUCCEEDED, message="ok", exit_code=0)
    write_marker(tmp_path / "done", marker)
    assert json.loads((tmp_path / "done").read_text())["outcome"] == "succeeded"
    assert read_marker(tmp_path / "done", DoneMarker) == marker


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"{a: 1}", {"a": 1}),  # a YAML flow mapping, not JSON: the YAML loader reads it
        (b'{"x": NaN}', {"x": "NaN"}),  # JSON's extension: YAML reads a string
        (b"a: 1\n", {"a": 1}),
        (b"[1, 2]", [1, 2]),
    ],
)
def test_what_json_would_read_differently_goes_to_the_yaml_loader(
    text: bytes, expected: object
) -> None:
    assert load_untrusted_yaml(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        b"{" + b'"a":[' * 100_000 + b"]" * 100_000 + b"}",  # nested too deeply for either
        b"a: &x [1]\nb: *x\n",  # an alias
        b'{"a": 1',  # broken JSON, broken YAML
    ],
)
def test_hostile_text_is_one_value_error(text: bytes) -> None:
    with pytest.raises(ValueError, match="not valid YAML"):
        load_untrusted_yaml(text)
