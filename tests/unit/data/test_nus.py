"""The NUS fixation layout (OSIE, ../shared's MIT1003 and EyeCrowd): generated fixtures, and the
real files with the counts their README gives."""

import numpy as np
import pytest
import scipy.io
from PIL import Image

from msinet.data import official_permutation, open_dataset


def make_nus(root, names, shape=(30, 40), observers=3, outside=False):
    """`stimuli/<name>` + `fixations.mat` exactly as the NUS release writes them (1-based)."""
    (root / "stimuli").mkdir(parents=True, exist_ok=True)
    entries = np.zeros((len(names), 1), dtype=[("img", "O"), ("subjects", "O")])
    for k, name in enumerate(names):
        Image.fromarray(np.full((*shape, 3), k % 255, np.uint8)).save(root / "stimuli" / name)
        subj = np.zeros((observers, 1), dtype=[("fix_x", "O"), ("fix_y", "O"),
                                               ("fix_duration", "O")])  # fmt: skip
        for o in range(observers):
            xs = [1.0 + o, float(shape[1])] + ([shape[1] + 5.0] if outside else [])
            ys = [2.0, float(shape[0])] + ([1.0] if outside else [])
            subj[o, 0]["fix_x"] = np.array([xs])
            subj[o, 0]["fix_y"] = np.array([ys])
            subj[o, 0]["fix_duration"] = np.array([[200.0] * len(xs)])
        entries[k, 0]["img"] = name
        entries[k, 0]["subjects"] = subj
    scipy.io.savemat(root / "fixations.mat", {"fixations": entries})


def test_nus_points_observers_and_out_of_image_points(tmp_path):
    make_nus(tmp_path, ["001.jpg", "002.jpg"], observers=2, outside=True)
    ds = open_dataset("eyecrowd", tmp_path)
    s = ds.samples()[0]
    assert s.name == "001" and s.fixations.shape == (30, 40)
    # (1,2) and (40,30) 1-based -> (0,1) and (39,29); (45,1) is outside and dropped
    assert set(zip(s.fixations.xs, s.fixations.ys, strict=True)) == {(0, 1), (1, 1), (39, 29)}
    assert sorted(s.fixations.subjects.tolist()) == [0, 0, 1, 1]


def test_eyecrowd_split_by_number(tmp_path):
    make_nus(tmp_path, [f"{k:03d}.jpg" for k in range(1, 501)], shape=(8, 8), observers=1)
    ds = open_dataset("eyecrowd", tmp_path)
    train, val = ds.samples("train"), ds.samples("val")
    assert [s.name for s in val] == [f"{k:03d}" for k in range(321, 401)]
    assert [s.name for s in train] == [f"{k:03d}" for k in range(1, 321)]
    assert len(ds.samples()) == 500  # 401-500 of a full release: in neither split


def test_mit1003_nus_layout_takes_the_official_split_on_sorted_stems(tmp_path):
    """The same stems in the official layout and in the NUS layout (listed in another order in
    fixations.mat) give the same validation images."""
    from tests.unit.data.test_datasets import make_mit1003

    make_mit1003(tmp_path / "official", n=40)
    stems = [f"i{k:04d}" for k in range(40)]
    shuffled = list(np.random.default_rng(3).permutation(stems))
    make_nus(tmp_path / "nus", [f"{s}.jpg" for s in shuffled])
    nus = open_dataset("mit1003", tmp_path / "nus")
    official = open_dataset("mit1003", tmp_path / "official")
    assert [s.name for s in nus.samples()] == stems
    for split in ("train", "val"):
        assert [s.name for s in nus.samples(split)] == [s.name for s in official.samples(split)]
    idx = official_permutation(40)
    assert [s.name for s in nus.samples("val")] == [stems[i] for i in idx[32:]]


def test_a_nus_file_naming_a_missing_image_is_clear(tmp_path):
    make_nus(tmp_path, ["001.jpg", "002.jpg"])
    (tmp_path / "stimuli" / "002.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="002.jpg not found"):
        open_dataset("eyecrowd", tmp_path).samples()
    (tmp_path / "fixations.mat").write_bytes(b"not a mat file")
    with pytest.raises(ValueError, match="not a NUS fixations file"):
        open_dataset("eyecrowd", tmp_path).samples()


EXPECTED = {  # name: images, train, val, fixations in the file, observers, first/last val
    "osie": (600, 500, 100, 84_134, 15, "1501", "1600"),
    "mit1003": (1003, 803, 200, 104_171, 15, None, None),
    "eyecrowd": (400, 320, 80, 101_780, 16, "321", "400"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_shared_datasets(name, request):
    root = request.getfixturevalue(f"{name}_root")
    n, n_train, n_val, n_fix, observers, first, last = EXPECTED[name]
    ds = open_dataset(name, root)
    every, train, val = ds.samples(), ds.samples("train"), ds.samples("val")
    assert (len(every), len(train), len(val)) == (n, n_train, n_val)
    assert not {s.name for s in train} & {s.name for s in val}
    kept = sum(len(s.fixations) for s in every)
    assert n_fix - 5 <= kept <= n_fix  # a few points of the file lie outside their image
    assert max(int(s.fixations.subjects.max()) for s in every) + 1 == observers
    if first:
        assert (val[0].name, val[-1].name) == (first, last)
    with Image.open(every[0].image) as im:
        assert every[0].fixations.shape == (im.height, im.width)
    # stable: a second open gives the same split
    assert [s.name for s in open_dataset(name, root).samples("val")] == [s.name for s in val]


def test_real_mit1003_val_is_the_official_msinet_split(mit1003_root):
    ds = open_dataset("mit1003", mit1003_root)
    stems = sorted(p.stem for p in (mit1003_root / "stimuli").glob("*.jpg"))
    idx = official_permutation(1003)
    assert [s.name for s in ds.samples("val")] == [stems[i] for i in idx[803:]]
