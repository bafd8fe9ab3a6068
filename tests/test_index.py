"""VectorIndex: exact and HNSW search against brute force, filtering, mutation, and the on-disk cache."""

from __future__ import annotations

import hashlib
import json
import stat
import threading
from collections.abc import Collection
from pathlib import Path

import numpy as np
import pytest

from headroom.memory.index import VectorIndex

DIM = 32


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute(ids: np.ndarray, vectors: np.ndarray, q: np.ndarray, k: int) -> list[int]:
    order = np.argsort(-(vectors @ q), kind="stable")[:k]
    return [int(i) for i in ids[order]]


@pytest.fixture(scope="module")
def big() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """2000 random 384-d unit vectors (HNSW's hardest case: no cluster structure) and 100 queries."""
    rng = np.random.default_rng(7)
    return np.arange(1000, 3000, dtype=np.int64), unit(rng, 2000, 384), unit(rng, 100, 384)


@pytest.fixture(scope="module")
def ann_index(big: tuple[np.ndarray, np.ndarray, np.ndarray]) -> VectorIndex:
    ids, vectors, _ = big
    index = VectorIndex(384, "m", ann_threshold=200)
    index.add(ids.tolist(), vectors)
    assert index.uses_ann
    return index


def recall(
    index: VectorIndex,
    ids: np.ndarray,
    vectors: np.ndarray,
    queries: np.ndarray,
    allowed: Collection[int] | None = None,
) -> float:
    hits = 0
    for q in queries:
        got = [i for i, _ in index.search(q, 10, allowed=allowed)]
        hits += len(set(got) & set(brute(ids, vectors, q, 10)))
    return hits / (10 * len(queries))


def test_exact_search_equals_brute_force() -> None:
    rng = np.random.default_rng(0)
    ids, vectors = np.arange(500, dtype=np.int64) * 3, unit(rng, 500)
    index = VectorIndex(DIM, "m")
    index.add(ids.tolist(), vectors)
    assert not index.uses_ann
    assert len(index) == 500
    for q in unit(rng, 20):
        got = index.search(q, 7)
        assert [i for i, _ in got] == brute(ids, vectors, q, 7)
        np.testing.assert_allclose([s for _, s in got], np.sort(vectors @ q)[::-1][:7], rtol=1e-5)
    assert len(index.search(vectors[0], 1000)) == 500
    assert index.search(vectors[0], 0) == []
    assert VectorIndex(DIM, "m").search(vectors[0]) == []


def test_add_normalises_and_validates() -> None:
    index = VectorIndex(3, "m")
    index.add([1], np.array([3.0, 0.0, 4.0]))
    ((key, score),) = index.search(np.array([0.0, 0.0, 2.0]), 1)
    assert key == 1
    assert score == pytest.approx(0.8)
    with pytest.raises(ValueError, match="shape"):
        index.add([1, 2], np.zeros((2, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="query"):
        index.search(np.zeros(4, dtype=np.float32))


def test_ann_recall_against_exact(big: tuple[np.ndarray, np.ndarray, np.ndarray], ann_index: VectorIndex) -> None:
    ids, vectors, queries = big
    assert recall(ann_index, ids, vectors, queries) >= 0.95
    # Scores are the exact float32 cosines even though the graph stores f16.
    q = queries[0]
    for key, score in ann_index.search(q, 5):
        assert score == pytest.approx(float(vectors[key - 1000] @ q), abs=1e-5)


def test_switches_from_exact_to_ann_as_items_arrive(big: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    ids, vectors, queries = big
    index = VectorIndex(384, "m", ann_threshold=500)
    for start in range(0, 2000, 250):
        index.add(ids[start : start + 250].tolist(), vectors[start : start + 250])
        assert index.uses_ann == (start + 250 >= 500)
        assert len(index) == start + 250
    assert recall(index, ids, vectors, queries[:30]) >= 0.95
    # Shrinking well below the threshold drops the graph (with hysteresis, not at the first removal).
    index.remove(ids[:1600].tolist())
    assert index.uses_ann  # 400 left: above half the threshold, the graph stays
    index.remove(ids[1600:1800].tolist())
    assert not index.uses_ann
    assert recall(index, ids[1800:], vectors[1800:], queries[:10]) == 1.0


@pytest.mark.parametrize("threshold", [10_000, 50])
def test_remove_and_replace(threshold: int) -> None:
    rng = np.random.default_rng(1)
    ids, vectors = np.arange(300, dtype=np.int64), unit(rng, 300)
    index = VectorIndex(DIM, "m", ann_threshold=threshold)
    index.add(ids.tolist(), vectors)
    index.remove([5, 6, 999])  # an unknown id is ignored
    assert len(index) == 298
    assert 5 not in index
    assert 7 in index
    assert all(i not in (5, 6) for i, _ in index.search(vectors[5], 300))
    # Replacing id 7 with id 8's vector: a query for that vector finds both at similarity 1.
    index.add([7], vectors[8])
    top = index.search(vectors[8], 2)
    assert {i for i, _ in top} == {7, 8}
    assert all(s == pytest.approx(1.0, abs=1e-5) for _, s in top)
    assert index.search(vectors[7], 1)[0][0] != 7
    index.add([5], vectors[5])
    assert index.search(vectors[5], 1)[0] == (5, pytest.approx(1.0, abs=1e-5))
    assert index.matches([*range(6), *range(7, 300)])


def test_allowed_small_set_is_exact(big: tuple[np.ndarray, np.ndarray, np.ndarray], ann_index: VectorIndex) -> None:
    ids, vectors, queries = big
    allowed = set(ids[::40].tolist()) | {123_456}  # 50 ids (< threshold), one not in the index
    mask = np.isin(ids, list(allowed))
    for q in queries[:10]:
        got = ann_index.search(q, 10, allowed=allowed)
        assert [i for i, _ in got] == brute(ids[mask], vectors[mask], q, 10)
    assert [i for i, _ in ann_index.search(queries[0], 10, allowed=[ids[3]])] == [ids[3]]
    assert ann_index.search(queries[0], 10, allowed=[]) == []


def test_allowed_large_set_uses_ann_overfetch(
    big: tuple[np.ndarray, np.ndarray, np.ndarray], ann_index: VectorIndex
) -> None:
    ids, vectors, queries = big
    allowed = set(ids[::2].tolist())  # 1000 ids: above the threshold of 200 and 5% of the index
    mask = np.isin(ids, list(allowed))
    for q in queries[:20]:
        got = ann_index.search(q, 10, allowed=allowed)
        assert len(got) == 10
        assert all(i in allowed for i, _ in got)
        assert [s for _, s in got] == sorted((s for _, s in got), reverse=True)
    assert recall(ann_index, ids[mask], vectors[mask], queries, allowed=allowed) >= 0.95


def test_allowed_with_too_few_present_falls_back_to_exact(
    big: tuple[np.ndarray, np.ndarray, np.ndarray], ann_index: VectorIndex
) -> None:
    ids, vectors, _ = big
    index = ann_index
    # 400 allowed ids of which only 3 exist: the graph can never return 10, so the search ends in a scan.
    allowed = set(range(10**6, 10**6 + 397)) | {int(ids[0]), int(ids[1]), int(ids[2])}
    got = index.search(vectors[1], 10, allowed=allowed)
    assert got[0][0] == ids[1]
    assert {i for i, _ in got} == {int(ids[0]), int(ids[1]), int(ids[2])}


@pytest.mark.parametrize("threshold", [10_000, 200])
def test_save_load_round_trip(tmp_path: Path, threshold: int, big: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    ids, vectors, queries = big
    path = tmp_path / "cache" / "vectors.idx"
    index = VectorIndex(384, "minilm", path, ann_threshold=threshold)
    index.add(ids.tolist(), vectors)
    index.save()
    loaded = VectorIndex.load(384, "minilm", path, ann_threshold=threshold)
    assert loaded is not None
    assert len(loaded) == 2000
    assert loaded.uses_ann == (threshold == 200)
    assert loaded.matches(ids.tolist())
    for q in queries[:10]:
        assert loaded.search(q, 10) == index.search(q, 10)
    meta = json.loads((tmp_path / "cache" / "vectors.idx.json").read_text())
    assert meta["model"] == "minilm"
    assert meta["dim"] == 384
    assert meta["count"] == 2000
    assert meta["ann"] == (threshold == 200)
    # Loaded indexes keep working as indexes.
    loaded.remove([int(ids[0])])
    loaded.add([1], vectors[0])
    assert loaded.search(vectors[0], 1)[0][0] == 1


def test_save_writes_owner_only_files_and_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "vectors.idx"
    index = VectorIndex(DIM, "m", path)
    index.add([1, 2], unit(np.random.default_rng(2), 2))
    index.save()
    index.save()  # overwriting works too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vectors.idx", "vectors.idx.json"]
    for p in tmp_path.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    VectorIndex(DIM, "m").save()  # no path: nothing to do


def test_empty_index_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "vectors.idx"
    VectorIndex(DIM, "m", path).save()
    loaded = VectorIndex.load(DIM, "m", path)
    assert loaded is not None
    assert len(loaded) == 0
    assert loaded.matches([])


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "vectors.idx"
    index = VectorIndex(DIM, "m", path, ann_threshold=50)
    index.add(list(range(100)), unit(np.random.default_rng(3), 100))
    index.save()
    assert VectorIndex.load(DIM, "m", path, ann_threshold=50) is not None
    return path


def test_load_missing_file_returns_none(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert VectorIndex.load(DIM, "m", tmp_path / "absent.idx") is None
    assert "absent.idx" in caplog.text


def test_load_truncated_file_returns_none(saved: Path) -> None:
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) // 2])
    assert VectorIndex.load(DIM, "m", saved) is None


def test_load_random_bytes_returns_none(saved: Path) -> None:
    saved.write_bytes(np.random.default_rng(4).bytes(saved.stat().st_size))
    assert VectorIndex.load(DIM, "m", saved) is None


def test_load_random_bytes_with_a_matching_checksum_returns_none(saved: Path) -> None:
    # Even when the sidecar vouches for the garbage, parsing it fails cleanly.
    junk = np.random.default_rng(5).bytes(4096)
    saved.write_bytes(junk)
    meta_path = saved.with_name(saved.name + ".json")
    meta = json.loads(meta_path.read_text())
    meta["file_sha256"] = hashlib.sha256(junk).hexdigest()
    meta_path.write_text(json.dumps(meta))
    assert VectorIndex.load(DIM, "m", saved) is None


def test_load_corrupt_sidecar_returns_none(saved: Path) -> None:
    saved.with_name(saved.name + ".json").write_text("{ nope")
    assert VectorIndex.load(DIM, "m", saved) is None
    saved.with_name(saved.name + ".json").unlink()
    assert VectorIndex.load(DIM, "m", saved) is None


def test_load_other_model_dim_or_format_returns_none(saved: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert VectorIndex.load(DIM, "other-model", saved) is None
    assert "other-model" in caplog.text
    assert VectorIndex.load(DIM * 2, "m", saved) is None
    meta_path = saved.with_name(saved.name + ".json")
    meta = json.loads(meta_path.read_text())
    meta["format"] = 99
    meta_path.write_text(json.dumps(meta))
    assert VectorIndex.load(DIM, "m", saved) is None


def test_rebuild_replaces_everything_and_accepts_db_bytes() -> None:
    rng = np.random.default_rng(6)
    vectors = unit(rng, 60)
    index = VectorIndex(DIM, "m", ann_threshold=40)
    index.add(list(range(1000, 1060)), vectors)
    assert index.uses_ann
    rows = [(i, vectors[i].tobytes() if i % 2 else vectors[i]) for i in range(30)]
    index.rebuild(rows)
    assert len(index) == 30
    assert not index.uses_ann
    assert index.matches(range(30))
    assert not index.matches(range(31))
    assert not index.matches(range(29))
    assert index.search(vectors[3], 1)[0][0] == 3
    index.rebuild((i, vectors[i % 60]) for i in range(100))
    assert index.uses_ann
    assert 1000 not in index
    with pytest.raises(ValueError, match="item 7"):
        index.rebuild([(7, b"\x00" * 12)])


def test_contains_only_accepts_integer_ids() -> None:
    index = VectorIndex(DIM, "m")
    index.add([1], unit(np.random.default_rng(8), 1))
    assert 1 in index
    assert np.int64(1) in index
    assert "1" not in index
    assert True not in index
    assert 2 not in index


def test_concurrent_adds_and_searches_across_the_threshold() -> None:
    rng = np.random.default_rng(9)
    vectors = unit(rng, 1200)
    index = VectorIndex(DIM, "m", ann_threshold=300)
    errors: list[BaseException] = []
    done = threading.Event()

    def searcher() -> None:
        try:
            while not done.is_set():
                for key, _ in index.search(vectors[0], 5, allowed=range(0, 1200, 3)):
                    assert key % 3 == 0
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=searcher) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for start in range(0, 1200, 100):
            index.add(list(range(start, start + 100)), vectors[start : start + 100])
            index.remove([start + 1])
    finally:
        done.set()
        for t in threads:
            t.join()
    assert not errors
    assert index.uses_ann
    assert len(index) == 1188
    assert index.search(vectors[600], 1)[0][0] == 600


def test_a_reused_allowed_set_follows_every_change_of_the_index() -> None:
    """The rows of a reused ``allowed`` set are kept between searches, and listed again when rows move."""
    rng = np.random.default_rng(7)
    index = VectorIndex(16, "m", ann_threshold=10_000)
    vectors = rng.standard_normal((300, 16)).astype(np.float32)
    index.add(list(range(1, 301)), vectors)
    allowed = set(range(1, 400, 3))  # ids 301.. are not indexed yet
    query = vectors[9]  # id 10, allowed
    assert index.search(query, 1, allowed=allowed)[0][0] == 10
    assert index.search(query, 1, allowed=allowed)[0][0] == 10  # the same set again: its kept rows
    index.add([304], query)  # an allowed id gets a row: the kept rows are stale
    assert {key for key, _ in index.search(query, 2, allowed=allowed)} == {10, 304}
    index.remove([10, 1])  # the last row moves into a freed one
    got = index.search(query, 5, allowed=allowed)
    assert got[0][0] == 304 and 10 not in {key for key, _ in got}
    brute = sorted(
        (float(vectors[key - 1] @ query / np.linalg.norm(vectors[key - 1])), key)
        for key in allowed
        if key <= 300 and key not in (10, 1)
    )
    assert [key for key, _ in got[1:]] == [key for _, key in sorted(brute, reverse=True)[:4]]


def test_an_allowed_subset_is_scored_block_by_block_as_a_whole_scan_would() -> None:
    """A subset smaller than a quarter of the index is gathered 256 rows at a time (``_gathered_scores``):
    the same ids and scores as brute force for a subset spanning several blocks, with a partial last one."""
    rng = np.random.default_rng(4)
    ids, vectors = np.arange(3000, dtype=np.int64) + 7, unit(rng, 3000)
    index = VectorIndex(DIM, "m")
    index.add(ids.tolist(), vectors)
    chosen = rng.choice(3000, size=601, replace=False)
    allowed = set(ids[chosen].tolist())
    mask = np.isin(ids, list(allowed))
    for q in unit(rng, 10):
        got = index.search(q, 25, allowed=allowed)
        assert [i for i, _ in got] == brute(ids[mask], vectors[mask], q, 25)
        np.testing.assert_allclose([s for _, s in got], np.sort(vectors[mask] @ q)[::-1][:25], rtol=1e-5)
