"""Dataset adapters and splits, on folder trees built in tmp_path from the real GRID fixtures."""

from __future__ import annotations

import shutil
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from conftest import GRID

from talkbench.errors import ConfigError, TalkbenchError
from talkbench.pipelines.datasets import DATASETS, list_clips, load_dataset_config
from talkbench.pipelines.datasets.grid import parse_align, sentence_from_code
from talkbench.pipelines.datasets.splits import SplitConfig, assign_split

ROOT = Path(__file__).resolve().parents[1]
NO_SPLIT = SplitConfig(val_fraction=0.0, test_fraction=0.0)

# GRID clips laid out as speaker folders; the id2 clip is renamed to its sentence code, as in the corpus
GRID_LAYOUT = {
    "s1/bbaf2n.mpg": "bbaf2n.mpg",
    "s1/brbk7n.mpg": "brbk7n.mpg",
    "s2/lbax4n.mpg": "lbax4n.mpg",
    "s2/swwp2s.mpg": "id2_vcd_swwp2s.mpg",
    "s3/lbbc2a.mpg": "lbbc2a.mpg",
}


def touch(root: Path, *rels: str, content: bytes = b"") -> None:
    for rel in rels:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def make_grid(root: Path, align_at: str = "align/s2") -> Path:
    """Real GRID videos (symlinked) in s1/ s2/ s3/, plus the fixture's alignment under ``align_at``."""
    for rel, fixture in GRID_LAYOUT.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).symlink_to(GRID / fixture)
    target = root / align_at if not align_at.startswith("../") else root.parent / align_at[3:]
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(GRID / "swwp2s.align", target / "swwp2s.align")
    return root


def test_every_adapter_is_registered():
    """Every adapter module of pipelines/datasets/ (one defining a function of its own name) has a registry
    entry that loads: the registry is the one list of names, checked against the files, not a second list."""
    folder = Path(DATASETS.get("grid").__code__.co_filename).parent
    loaded = [DATASETS.get(name) for name in DATASETS.names()]
    assert all(callable(fn) and Path(fn.__code__.co_filename).parent == folder for fn in loaded)
    registered = {Path(fn.__code__.co_filename).stem for fn in loaded}
    adapters = {p.stem for p in folder.glob("*.py") if f"\ndef {p.stem}(" in p.read_text()}
    assert {"grid", "folder"} <= adapters <= registered, adapters - registered


# --- GRID ------------------------------------------------------------------------------------------


def test_grid_ids_speakers_and_stable_order(tmp_path):
    root = make_grid(tmp_path / "grid")
    records = list_clips("grid", root, NO_SPLIT)
    assert [r.clip_id for r in records] == ["s1__bbaf2n", "s1__brbk7n", "s2__lbax4n", "s2__swwp2s", "s3__lbbc2a"]
    assert [r.speaker_id for r in records] == ["s1", "s1", "s2", "s2", "s3"]
    assert all(r.dataset == "grid" and Path(r.source_path).exists() for r in records)
    # the same corpus somewhere else gives the same ids in the same order
    moved = make_grid(tmp_path / "elsewhere" / "GRID")
    assert [r.clip_id for r in list_clips("grid", moved, NO_SPLIT)] == [r.clip_id for r in records]


def test_grid_alignment_gives_words_and_transcript(tmp_path):
    records = {r.clip_id: r for r in list_clips("grid", make_grid(tmp_path / "grid"), NO_SPLIT)}
    aligned = records["s2__swwp2s"]
    assert aligned.transcript == "set white with p two soon"
    assert aligned.words[0] == (0.0, 0.49, "sil")
    assert aligned.words[1] == (0.49, 0.77, "set")
    assert aligned.words[-1] == (2.21, 2.98, "sil")
    # without an alignment: no word timings, transcript spelt from the sentence code
    assert records["s1__bbaf2n"].words is None
    assert records["s1__bbaf2n"].transcript == "bin blue at f two now"
    assert records["s3__lbbc2a"].transcript == "lay blue by c two again"


def test_grid_alignment_tree_next_to_the_videos(tmp_path):
    root = make_grid(tmp_path / "video", align_at="../alignments/s2")
    records = {r.clip_id: r for r in list_clips("grid", root, NO_SPLIT)}
    assert records["s2__swwp2s"].words[1] == (0.49, 0.77, "set")
    # an alignment of speaker s2 is not used for another speaker's clip with the same code
    (root / "s1" / "swwp2s.mpg").symlink_to(GRID / "id2_vcd_swwp2s.mpg")
    records = {r.clip_id: r for r in list_clips("grid", root, NO_SPLIT)}
    assert records["s1__swwp2s"].words is None
    assert records["s1__swwp2s"].transcript == "set white with p two soon"  # from the code


def test_grid_flat_folder_speaker_rule_and_code_alignment():
    records = {r.clip_id: r for r in list_clips("grid", GRID, NO_SPLIT)}
    assert sorted(records) == ["bbaf2n", "brbk7n", "id2_vcd_swwp2s", "lbax4n", "lbbc2a"]
    assert records["id2_vcd_swwp2s"].speaker_id == "id2"
    assert records["bbaf2n"].speaker_id == "unknown"
    # swwp2s.align matches id2_vcd_swwp2s by its sentence code
    assert records["id2_vcd_swwp2s"].words[2] == (0.77, 1.09, "white")


def test_grid_options(tmp_path):
    root = make_grid(tmp_path / "grid", align_at="elsewhere_aligns")
    assert {r.clip_id: r for r in list_clips("grid", root, NO_SPLIT)}["s2__swwp2s"].words is not None
    records = list_clips("grid", root, NO_SPLIT, {"align_dir": "elsewhere_aligns", "transcript_from_code": False})
    by_id = {r.clip_id: r for r in records}
    assert by_id["s2__swwp2s"].words[1][2] == "set"
    assert by_id["s1__bbaf2n"].transcript is None
    with pytest.raises(ConfigError, match="align_dir"):
        list_clips("grid", root, NO_SPLIT, {"align_dir": "nowhere"})


def test_grid_bad_alignment_is_ignored_not_fatal(tmp_path, caplog):
    root = make_grid(tmp_path / "grid")
    (root / "align" / "s2" / "swwp2s.align").write_text("0 12250\nnot an alignment\n")
    records = {r.clip_id: r for r in list_clips("grid", root, NO_SPLIT)}
    assert records["s2__swwp2s"].words is None
    assert records["s2__swwp2s"].transcript == "set white with p two soon"
    assert "ignoring alignment" in caplog.text


def test_grid_sentence_codes_and_align_units():
    assert sentence_from_code("swwp2s") == "set white with p two soon"
    assert sentence_from_code("pgiz9a") == "place green in z nine again"
    assert sentence_from_code("bbaw2n") is None  # GRID has no letter w
    assert sentence_from_code("xxxxxx") is None
    assert sentence_from_code("bbaf2") is None
    words = parse_align(GRID / "swwp2s.align")
    assert words[-1][1] == pytest.approx(74500 / 25000)  # 1/25,000 s units


def test_grid_explicit_test_speakers(tmp_path):
    root = make_grid(tmp_path / "grid")
    cfg = load_dataset_config(ROOT / "configs" / "datasets" / "grid.yaml", ["split.val_fraction=0.0"])
    splits = {r.speaker_id: r.split for r in list_clips("grid", root, cfg.split, cfg.options)}
    assert splits == {"s1": "test", "s2": "test", "s3": "train"}


# --- splits ----------------------------------------------------------------------------------------


def many_speakers(root: Path, n: int = 60) -> Path:
    touch(root, *[f"p{i:03d}/clip{j}.mp4" for i in range(n) for j in range(3)])
    return root


def test_splits_are_speaker_disjoint_deterministic_and_near_the_fractions(tmp_path):
    root = many_speakers(tmp_path / "c", 200)
    cfg = SplitConfig(val_fraction=0.2, test_fraction=0.2, seed=7)
    records = list_clips("folder", root, cfg)
    per_speaker = defaultdict(set)
    for r in records:
        per_speaker[r.speaker_id].add(r.split)
    assert all(len(s) == 1 for s in per_speaker.values())  # speaker-disjoint
    counts = Counter(next(iter(s)) for s in per_speaker.values())
    assert set(counts) == {"train", "val", "test"}
    assert 20 <= counts["test"] <= 60 and 20 <= counts["val"] <= 60  # 40 expected of 200
    assert list_clips("folder", root, cfg) == records  # deterministic
    other_seed = list_clips("folder", root, cfg.model_copy(update={"seed": 8}))
    assert [r.split for r in other_seed] != [r.split for r in records]


def test_adding_speakers_never_moves_existing_ones(tmp_path):
    cfg = SplitConfig(val_fraction=0.3, test_fraction=0.3)
    small = {r.speaker_id: r.split for r in list_clips("folder", many_speakers(tmp_path / "a", 20), cfg)}
    large = {r.speaker_id: r.split for r in list_clips("folder", many_speakers(tmp_path / "b", 60), cfg)}
    assert all(large[s] == split for s, split in small.items())


def test_explicit_speaker_lists_win_and_are_checked():
    cfg = SplitConfig(val_fraction=0.5, test_fraction=0.4, test_speakers=["a"], val_speakers=["b"])
    assert assign_split("a", cfg) == "test"
    assert assign_split("b", cfg) == "val"
    # the other speakers: no more test speakers (the list is the test split), val/train by hash
    others = {assign_split(f"x{i}", cfg) for i in range(50)}
    assert others == {"train"}  # val has a list too
    cfg = SplitConfig(val_fraction=0.5, test_fraction=0.0, test_speakers=["a"])
    assert {assign_split(f"x{i}", cfg) for i in range(50)} == {"train", "val"}


def test_bad_split_configs(tmp_path):
    root = many_speakers(tmp_path / "c", 3)
    with pytest.raises(ConfigError, match="both"):
        list_clips("folder", root, SplitConfig(val_speakers=["p000"], test_speakers=["p000"]))
    with pytest.raises(ConfigError, match="< 1"):
        list_clips("folder", root, SplitConfig(val_fraction=0.6, test_fraction=0.5))


# --- other adapters --------------------------------------------------------------------------------


def test_lrs3_text_words_and_official_split(tmp_path):
    root = tmp_path / "lrs3"
    touch(root, "test/0Fi83BHQsMA/00002.mp4", "trainval/abcDEF12345/00001.mp4", "pretrain/abcDEF12345/00009.mp4")
    (root / "test/0Fi83BHQsMA/00002.txt").write_text(
        "Text:  SO WHAT DO YOU DO\nConf:  4\n\nWORD START END ASDSCORE\nSO 0.08 0.21 7.1\nWHAT 0.21 0.39 8.0\n"
    )
    (root / "trainval/abcDEF12345/00001.txt").write_text("Text:  THANK YOU\nConf:  3\n")
    records = {r.clip_id: r for r in list_clips("lrs3", root, SplitConfig(val_fraction=0.0, test_fraction=0.5))}
    assert sorted(records) == ["pretrain__abcDEF12345__00009", "test__0Fi83BHQsMA__00002",
                               "trainval__abcDEF12345__00001"]
    test = records["test__0Fi83BHQsMA__00002"]
    assert (test.transcript, test.speaker_id, test.split) == ("SO WHAT DO YOU DO", "0Fi83BHQsMA", "test")
    assert test.words == ((0.08, 0.21, "SO"), (0.21, 0.39, "WHAT"))
    tv = records["trainval__abcDEF12345__00001"]
    assert (tv.transcript, tv.words, tv.split) == ("THANK YOU", None, "train")  # never test by fraction
    assert records["pretrain__abcDEF12345__00009"].transcript is None


def test_tcd_timit_straight_camera_by_default(tmp_path):
    root = tmp_path / "tcd"
    touch(root, "volunteers/01/Clips/straightcam/sa1.mp4", "volunteers/01/Clips/30degcam/sa1.mp4",
          "lipspeakers/Lipspkr1/Clips/straightcam/sx10.mp4", "volunteers/02/Clips/straightcam/si1.mp4",
          "README.mp4")
    records = list_clips("tcd-timit", root, NO_SPLIT)
    assert [(r.clip_id, r.speaker_id) for r in records] == [
        ("lipspeakers__Lipspkr1__Clips__straightcam__sx10", "lipspeakers-Lipspkr1"),
        ("volunteers__01__Clips__straightcam__sa1", "volunteers-01"),
        ("volunteers__02__Clips__straightcam__si1", "volunteers-02"),
    ]
    both = list_clips("tcd-timit", root, NO_SPLIT, {"cameras": ["straightcam", "30degcam"]})
    assert len(both) == 4
    assert len(list_clips("tcd-timit", root, NO_SPLIT, {"groups": ["volunteers"]})) == 2


def test_hdtf_speaker_is_the_stem_without_index(tmp_path):
    root = tmp_path / "hdtf"
    touch(root, "WRA_AdamKinzinger_000.mp4", "WRA_AdamKinzinger_001.mp4", "RD_Radio31_000.mp4", "Solo.mp4")
    records = list_clips("hdtf", root, SplitConfig(val_fraction=0.3, test_fraction=0.3))
    assert [(r.clip_id, r.speaker_id) for r in records] == [
        ("RD_Radio31_000", "RD_Radio31"), ("Solo", "Solo"),
        ("WRA_AdamKinzinger_000", "WRA_AdamKinzinger"), ("WRA_AdamKinzinger_001", "WRA_AdamKinzinger"),
    ]
    assert records[2].split == records[3].split


def test_folder_recursion_extensions_bad_files_and_unicode(tmp_path):
    root = tmp_path / "videos"
    touch(root, "a/b/deep.MOV", "a/x.webm", "top.mkv", "Zoë/été 1.mp4", "clip.avi", "clip.mp4",
          "notes.txt", "frame.jpg", ".hidden.mp4", ".cache/y.mp4", "empty.mp4")
    (root / "text_named.mp4").write_text("this is not a video")
    records = list_clips("folder", root, NO_SPLIT)
    ids = [r.clip_id for r in records]
    assert ids == ["Zoë__été 1", "a__b__deep", "a__x", "clip.avi", "clip.mp4", "empty", "text_named", "top"]
    by_id = {r.clip_id: r for r in records}
    assert by_id["a__b__deep"].speaker_id == "b"
    assert by_id["Zoë__été 1"].speaker_id == "Zoë"
    assert by_id["top"].speaker_id == "unknown"
    # bad files are listed (the decode stage turns them into failed rows), never opened here
    assert Path(by_id["empty"].source_path).stat().st_size == 0
    assert {r.speaker_id for r in list_clips("folder", root, NO_SPLIT, {"speaker_from": "top"})} >= {"a", "Zoë"}
    assert len(list_clips("folder", root, NO_SPLIT, {"extensions": ".mp4"})) == 4
    with pytest.raises(ConfigError, match="speaker_from"):
        list_clips("folder", root, NO_SPLIT, {"speaker_from": "guess"})


def test_folder_transcript_sidecar(tmp_path):
    touch(tmp_path, "spk/one.mp4")
    (tmp_path / "spk" / "one.txt").write_text("\nhello world\n")
    assert list_clips("folder", tmp_path, NO_SPLIT)[0].transcript == "hello world"


def test_job_level_errors(tmp_path):
    with pytest.raises(TalkbenchError, match="not found"):
        list_clips("folder", tmp_path / "missing")
    with pytest.raises(TalkbenchError, match="unknown dataset 'voxceleb'"):
        list_clips("voxceleb", tmp_path)
    with pytest.raises(ConfigError, match="unknown option.*'extension'"):
        list_clips("hdtf", tmp_path, options={"extension": [".mp4"]})
    with pytest.raises(TalkbenchError, match="no corpus.json"):
        list_clips("synthetic", tmp_path)
    with pytest.raises(ConfigError, match="unknown key 'splits'"):
        load_dataset_config(None, ["splits.seed=1"])


def test_dataset_configs_load_and_their_options_exist():
    for path in sorted((ROOT / "configs" / "datasets").glob("*.yaml")):
        cfg = load_dataset_config(path)
        name = path.stem.replace("_", "-")
        adapter = DATASETS.get(name)
        assert set(cfg.options) <= set(adapter.__kwdefaults__ or {}), path
