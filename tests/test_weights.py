"""The weights store: import with hash pinning, clear errors, no silent download, the CLI."""

from __future__ import annotations

import argparse
import dataclasses
import json

import pytest

from talkbench import weights
from talkbench.errors import TalkbenchError, WeightsMissingError
from talkbench.io import sha256_file
from talkbench.weights_cli import register_weights_cli


@pytest.fixture()
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("TALKBENCH_WEIGHTS", str(tmp_path / "store"))
    return tmp_path / "store"


def _file(tmp_path, name: str, payload: bytes):
    p = tmp_path / name
    p.write_bytes(payload)
    return p


def test_registry_covers_the_published_files() -> None:
    for name in ("lpips-alex-v0.1", "alexnet-imagenet", "inception-fid", "syncnet_v2", "arcface-iresnet50"):
        s = weights.spec(name)
        assert s.filename and s.licence and s.used_by and (s.url or s.source)
    with pytest.raises(TalkbenchError, match="unknown weights"):
        weights.spec("nope")


def test_missing_weights_message_says_how_to_get_them(store) -> None:
    assert weights.missing_weights(["syncnet_v2"]) == ["syncnet_v2"]
    with pytest.raises(WeightsMissingError) as e:
        weights.require("syncnet_v2")
    msg = str(e.value)
    assert "talkbench weights import syncnet_v2" in msg and "robots.ox.ac.uk" in msg


def test_import_pins_hash_and_refuses_a_different_file(store, tmp_path) -> None:
    a = _file(tmp_path, "a.model", b"first file")
    b = _file(tmp_path, "b.model", b"another file")
    dest = weights.import_weights("syncnet_v2", a)
    assert dest == store / "syncnet_v2.model" and dest.read_bytes() == b"first file"
    digest = sha256_file(a)
    assert json.loads((store / "hashes.json").read_text()) == {"syncnet_v2": digest}
    assert weights.verified_sha256("syncnet_v2") == digest
    with pytest.raises(TalkbenchError, match="pinned"):
        weights.import_weights("syncnet_v2", b)
    weights.import_weights("syncnet_v2", b, force=True)
    assert weights.verified_sha256("syncnet_v2") == sha256_file(b)


def test_changed_file_in_store_is_detected(store, tmp_path) -> None:
    weights.import_weights("syncnet_v2", _file(tmp_path, "a.model", b"original"))
    (store / "syncnet_v2.model").write_bytes(b"tampered!")
    with pytest.raises(TalkbenchError, match="the file changed"):
        weights.require("syncnet_v2")


def test_published_hash_prefix_is_checked(store, tmp_path) -> None:
    with pytest.raises(TalkbenchError, match="7be5be79"):
        weights.import_weights("alexnet-imagenet", _file(tmp_path, "alexnet.pth", b"not alexnet"))
    assert not weights.is_present("alexnet-imagenet")


def test_fetch_gives_a_clear_error_without_network(store, monkeypatch) -> None:
    spec = dataclasses.replace(weights.spec("syncnet_v2"), url="http://127.0.0.1:9/syncnet_v2.model")
    monkeypatch.setitem(weights.WEIGHTS, "syncnet_v2", spec)
    with pytest.raises(TalkbenchError, match="could not download syncnet_v2.*talkbench weights import"):
        weights.fetch("syncnet_v2", timeout_s=5)
    assert not weights.is_present("syncnet_v2")
    with pytest.raises(TalkbenchError, match="no direct download link"):
        weights.fetch("arcface-iresnet50")


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    register_weights_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args)


def test_cli_list_and_import(store, tmp_path, capsys) -> None:
    assert _cli(["weights", "list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["weights"]}
    assert rows["syncnet_v2"]["present"] is False and rows["arcface-iresnet50"]["licence"]
    src = _file(tmp_path, "s.model", b"weights bytes")
    assert _cli(["weights", "import", "syncnet_v2", str(src)]) == 0
    assert "imported syncnet_v2" in capsys.readouterr().out
    assert _cli(["weights", "list"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("syncnet_v2"))
    assert "present" in line and sha256_file(src)[:16] in line
