import os
import re
import threading
from pathlib import Path

import pytest

from hpc_dl import runs
from hpc_dl.errors import RunNotFound


def test_layout_is_owned_by_rundir(tmp_path):
    run = runs.RunDir.create(tmp_path, "s", "r1")
    assert sorted(p.name for p in run.path.iterdir()) == ["checkpoints", "events", "logs", "submitit"]
    assert run.rank_events(3) == run.path / "events" / "rank-3.jsonl"
    assert run.rank_log(0) == run.path / "logs" / "rank-0.log"
    assert (run.study, run.run_id) == ("s", "r1")


def test_run_id_never_collides(tmp_path):
    runs.RunDir.create(tmp_path, "s", "same")
    with pytest.raises(FileExistsError):
        runs.RunDir.create(tmp_path, "s", "same")
    rid = runs.new_run_id("ddp", 1, 2)
    assert re.fullmatch(r"\d{8}-\d{6}-ddp-1x2-[0-9a-f]{8}", rid)


def test_concurrent_creation_gives_distinct_folders(tmp_path):
    made, errors = [], []

    def worker():
        for _ in range(50):
            rid = runs.new_run_id("ddp", 1, 1)
            try:
                made.append(runs.RunDir.create(tmp_path, "s", rid).path)
            except FileExistsError as exc:  # pragma: no cover - would mean a collision
                errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(made)) == 200


def test_write_atomic_replaces_whole_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "d" / "f.json"
    runs.write_json(target, {"a": 1})
    runs.write_json(target, {"a": 2})
    assert runs.read_json(target) == {"a": 2}
    assert os.listdir(target.parent) == ["f.json"]


def test_write_atomic_keeps_old_content_on_failure(tmp_path):
    target = tmp_path / "f.txt"
    runs.write_atomic(target, "old")

    class Boom:
        def __str__(self):
            raise RuntimeError("boom")

    with pytest.raises(TypeError):
        runs.write_atomic(target, Boom())
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["f.txt"]


def test_read_json_of_partial_file_is_none(tmp_path):
    (tmp_path / "x.json").write_text('{"a": ')
    assert runs.read_json(tmp_path / "x.json") is None
    assert runs.read_json(tmp_path / "missing.json") is None


def test_resolve_by_folder_id_and_prefix(tmp_path):
    a = runs.RunDir.create(tmp_path, "s", "20260101-ddp-aaa")
    runs.RunDir.create(tmp_path, "s", "20260101-ddp-abb")
    for r in (a,):
        r.spec.write_text("{}")
    (tmp_path / "s" / "20260101-ddp-abb" / "spec.json").write_text("{}")
    assert runs.resolve(str(a.path), tmp_path) == a
    assert runs.resolve("20260101-ddp-aa", tmp_path) == a
    with pytest.raises(RunNotFound) as info:
        runs.resolve("20260101-ddp-a", tmp_path)
    assert str(info.value) == "run '20260101-ddp-a' is ambiguous: 20260101-ddp-aaa, 20260101-ddp-abb"


def test_find_runs_walks_nested_studies(tmp_path):
    for study, rid in (("a", "1"), ("b", "2")):
        r = runs.RunDir.create(tmp_path, study, rid)
        r.spec.write_text("{}")
    assert [r.run_id for r in runs.find_runs([tmp_path])] == ["1", "2"]
    assert [r.run_id for r in runs.find_runs([tmp_path / "a" / "1"])] == ["1"]
    assert runs.find_runs([Path(tmp_path / "nothing")]) == []


def test_a_study_is_found_by_its_folder_or_its_name_but_never_for_a_run(tmp_path):
    StudyDir = runs.StudyDir
    root = tmp_path / "runs"
    run = runs.RunDir.create(root, "st", "r1")
    (run.path / "spec.json").write_text("{}")
    assert StudyDir.find("st", root) == StudyDir((root / "st").resolve())
    assert StudyDir.find(str(root / "st"), tmp_path) == StudyDir((root / "st").resolve())
    assert StudyDir.find(str(run.path), root) is None  # a run folder is a run
    assert StudyDir.find("r1", root) is None  # so is a run id
    assert StudyDir.find("nope", root) is None
    assert StudyDir.of(root, "st").sweep_record("12") == root / "st" / "sweep-12.json"
