import gzip
import struct

import pytest
import torch

from mnist_core.data import mnist as D
from mnist_core.data.pixels import MNIST_MEAN, MNIST_STD
from mnist_core.paths import DATA_ENV


def write_idx(path, array: torch.Tensor, compress=False):
    header = bytes([0, 0, 8, array.dim()]) + struct.pack(f">{array.dim()}I", *array.shape)
    raw = header + array.numpy().tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return raw


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_plain_and_gzip(tmp_path, compress):
    arr = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8)
    write_idx(tmp_path / "x", arr, compress)
    out = D.read_idx(tmp_path / "x")
    assert out.dtype == torch.uint8 and torch.equal(out, arr)


def test_truncated_plain_file_names_the_file(tmp_path):
    raw = write_idx(tmp_path / "x", torch.zeros(5, 28, 28, dtype=torch.uint8))
    (tmp_path / "x").write_bytes(raw[:-100])
    with pytest.raises(D.DataError, match=r"x: header promises 5x28x28.*truncated"):
        D.read_idx(tmp_path / "x")


def test_truncated_gzip_is_a_clear_error(tmp_path):
    write_idx(tmp_path / "x.gz", torch.zeros(50, 28, 28, dtype=torch.uint8), compress=True)
    blob = (tmp_path / "x.gz").read_bytes()
    (tmp_path / "x.gz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(D.DataError, match=r"x\.gz: the gzip stream is truncated or corrupt"):
        D.read_idx(tmp_path / "x.gz")


def test_corrupt_gzip_body(tmp_path):
    write_idx(tmp_path / "x.gz", torch.arange(256, dtype=torch.uint8).repeat(40).reshape(10, 32, 32), True)
    blob = bytearray((tmp_path / "x.gz").read_bytes())
    for i in range(20, 40):
        blob[i] ^= 0xFF
    (tmp_path / "x.gz").write_bytes(bytes(blob))
    with pytest.raises(D.DataError, match="x.gz"):
        D.read_idx(tmp_path / "x.gz")


def test_bad_magic_and_checksum(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x00\x00\x0d\x01" + b"\x00" * 20)
    with pytest.raises(D.DataError, match="bad IDX magic"):
        D.read_idx(tmp_path / "bad")
    write_idx(tmp_path / "ok", torch.zeros(3, dtype=torch.uint8))
    with pytest.raises(D.DataError, match="SHA-256"):
        D.read_idx(tmp_path / "ok", expected_sha256="0" * 64)


def test_missing_data_offline_names_variable_and_files(tmp_path, monkeypatch):
    def offline(url, *a, **k):
        raise OSError("network is unreachable")

    monkeypatch.setattr("torchvision.datasets.utils.download_url", offline)
    monkeypatch.delenv(D.OFFLINE_ENV, raising=False)  # really try the (unreachable) mirrors
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "empty"))
    with pytest.raises(D.DataError) as err:
        D.load_mnist()
    msg = str(err.value)
    assert DATA_ENV in msg and all(f"{n}.gz" in msg for n in D.FILES)


def test_download_path_fetches_then_verifies(tmp_path, monkeypatch, mnist):
    """With a reachable mirror (faked by copying the real files), the four files arrive and load."""
    source = D.data_dir()
    calls = []

    def fake_download(url, root, filename, md5=None):
        calls.append(url)
        (tmp_path / "dl" / filename).write_bytes(D.find_file(source, filename[:-3]).read_bytes())

    monkeypatch.setattr("torchvision.datasets.utils.download_url", fake_download)
    loaded = D.load_mnist(tmp_path / "dl", download_missing=True)
    assert len(calls) == 4 and torch.equal(loaded.test_labels, mnist.test_labels)


def test_real_mnist_matches_published_facts(mnist):
    assert mnist.train_images.shape == (60000, 28, 28) and mnist.test_images.shape == (10000, 28, 28)
    pixels = mnist.train_images.float() / 255
    assert abs(pixels.mean().item() - MNIST_MEAN) < 1e-4
    assert abs(pixels.std().item() - MNIST_STD) < 1e-4
    counts = torch.bincount(mnist.test_labels, minlength=10).tolist()
    assert counts == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_split_is_seeded_disjoint_and_sized():
    a_train, a_val = D.split_indices(60000, 0.1, seed=7)
    b_train, b_val = D.split_indices(60000, 0.1, seed=7)
    c_train, c_val = D.split_indices(60000, 0.1, seed=8)
    assert torch.equal(a_val, b_val) and torch.equal(a_train, b_train)
    assert not torch.equal(a_val, c_val)
    assert len(a_val) == 6000 and len(a_train) == 54000
    assert len(set(a_val.tolist()) | set(a_train.tolist())) == 60000
    assert len(D.split_indices(60000, 1 / 6, 0)[1]) == 10000  # the 50k/10k split


def test_splits_are_normalised_and_limit_keeps_validation_real(mnist):
    s = D.make_splits(mnist, 0.2, seed=1, limit=1000)
    assert s.train_x.shape == (1000, 1, 28, 28) and len(s.val_y) == 200
    full = D.make_splits(mnist, 0.2, seed=1)
    assert torch.equal(s.val_index, full.val_index[:200])
    assert abs(full.train_x.mean().item()) < 0.01 and abs(full.train_x.std().item() - 1) < 0.01
    assert torch.equal(s.test_y, mnist.test_labels)


def test_batches_cover_every_sample_once():
    x, y = torch.arange(10).float().view(10, 1), torch.arange(10)
    seen = torch.cat([yb for _, yb in D.batches(x, y, 3, torch.Generator().manual_seed(0))])
    assert sorted(seen.tolist()) == list(range(10))
    assert [len(b) for _, b in D.batches(x, y, 4)] == [4, 4, 2]


def test_decoded_copy_is_written_once_then_memory_mapped(tmp_path, monkeypatch, mnist):
    monkeypatch.setenv("MNIST_LAB_CACHE", str(tmp_path / "cache"))
    folder = mnist.source
    D.clear_cache()
    D.load_mnist(folder)  # reads and verifies the original files, leaves the decoded copy
    [copy] = (tmp_path / "cache").glob("mnist-*.u8")
    D.clear_cache()
    again = D.load_mnist(folder)
    assert torch.equal(again.train_images, mnist.train_images)
    assert torch.equal(again.test_labels, mnist.test_labels)
    assert again.train_images.untyped_storage().nbytes() == copy.stat().st_size  # the file, mapped
    mapped = D.read_decoded(copy)
    assert mapped is not None and torch.equal(mapped["t10k-images-idx3-ubyte"], mnist.test_images)

    raw = bytearray(copy.read_bytes())  # one digit's pixel damaged on disk
    raw[-5000] ^= 0xFF
    copy.write_bytes(bytes(raw))
    assert D.read_decoded(copy) is None
    D.clear_cache()
    healed = D.load_mnist(folder)  # ignored, read from the originals again, rewritten
    assert torch.equal(healed.test_images, mnist.test_images)
    assert D.read_decoded(copy) is not None
    copy.write_bytes(copy.read_bytes()[:1000])  # truncated
    assert D.read_decoded(copy) is None
    D.clear_cache()


def test_writing_a_decoded_copy_removes_the_ones_that_can_never_be_used_again(tmp_path, monkeypatch, mnist):
    """One copy per data folder: a folder that is gone or whose files changed loses its copy the
    next time any copy is written; the copy of a folder that is still there stays."""
    import os
    import shutil

    cache = tmp_path / "cache"
    monkeypatch.setenv("MNIST_LAB_CACHE", str(cache))
    folders = {}
    for name in ("kept", "moved", "edited"):
        folders[name] = tmp_path / name
        shutil.copytree(mnist.source, folders[name])
        D.clear_cache()
        D.load_mnist(folders[name])
    assert len(list(cache.glob("mnist-*.u8"))) == 3
    old_format = cache / "mnist-00000000000000000000.u8"
    old_format.write_bytes(b'{"version": 1}'.ljust(4096) + b"\0" * 16)
    abandoned = cache / ".decoding-abc"
    abandoned.write_bytes(b"half")
    os.utime(abandoned, (1, 1))
    shutil.rmtree(folders["moved"])
    edited = next(folders["edited"].glob("t10k-labels*"))
    os.utime(edited, ns=(0, edited.stat().st_mtime_ns + 10**9))

    D.clear_cache()
    D.load_mnist(folders["edited"])  # its files changed: a new copy, and the pruning

    left = sorted(cache.glob("mnist-*.u8"))
    assert len(left) == 2 and not abandoned.exists() and not old_format.exists()
    for name in ("kept", "edited"):  # both still load from their copy, without re-reading
        D.clear_cache()
        sources = {n: D.find_file(folders[name], n) for n in D.FILES}
        assert D.decoded_path(sources) in left
        assert D.read_decoded(D.decoded_path(sources)) is not None
    D.clear_cache()


def test_a_full_cache_disk_only_means_no_decoded_copy(monkeypatch, mnist):
    from support.tmpfs import fill, require_mount, tmpfs

    require_mount()
    with tmpfs(8) as small:
        fill(small)
        monkeypatch.setenv("MNIST_LAB_CACHE", str(small / "cache"))
        D.clear_cache()
        loaded = D.load_mnist(mnist.source)
        assert torch.equal(loaded.train_labels, mnist.train_labels)
        assert not list(small.rglob("mnist-*")) and not list(small.rglob(".decoding-*"))
        D.clear_cache()
