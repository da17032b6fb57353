"""Dataset loaders on fixtures generated here in the exact official layouts, and on real OSIE."""

import csv

import numpy as np
import pytest
import scipy.io
from PIL import Image

from msinet.data import official_permutation, open_dataset

RNG = np.random.default_rng(0)


def jpeg(path, h, w, value=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    a = RNG.integers(0, 255, (h, w, 3), dtype=np.uint8) if value is None else value
    Image.fromarray(a).save(path)


def gray(path, a):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a.astype(np.uint8)).save(path)


def make_salicon(root, n=3):
    for split in ("train", "val"):
        for k in range(n):
            stem = f"COCO_{split}2014_{k:012d}"
            jpeg(root / "images" / split / f"{stem}.jpg", 48, 64)
            gray(root / "maps" / split / f"{stem}.png", RNG.integers(0, 255, (48, 64)))
            # gaze: one struct per observer; `fixations` rows are (x, y), 1-based; the second
            # observer has a mouse point outside the image (2017 release)
            gaze = np.zeros((2,), dtype=[("location", "O"), ("timestamp", "O"), ("fixations", "O")])
            gaze[0]["fixations"] = np.array([[10.0, 5.0], [64.0, 48.0]])
            gaze[1]["fixations"] = np.array([[1.0, 1.0], [70.0, 20.0]])
            for g in gaze:
                g["location"], g["timestamp"] = np.zeros((1, 2)), np.zeros(1)
            (root / "fixations" / split).mkdir(parents=True, exist_ok=True)
            scipy.io.savemat(
                root / "fixations" / split / f"{stem}.mat",
                {"image": stem, "resolution": np.array([48, 64]), "gaze": gaze},
            )


def make_mit1003(root, n=10):
    for k in range(n):
        stem = f"i{k:04d}"
        jpeg(root / "ALLSTIMULI" / f"{stem}.jpeg", 40, 50)
        pts = np.zeros((40, 50))
        pts[10, 20] = pts[30, 5] = 255
        gray(root / "ALLFIXATIONMAPS" / f"{stem}_fixPts.jpg", pts)
        gray(root / "ALLFIXATIONMAPS" / f"{stem}_fixMap.jpg", RNG.integers(0, 255, (40, 50)))
    # the stray file of the real release: no underscore, no stimulus of that name
    gray(
        root / "ALLFIXATIONMAPS" / "i05june05_static_street_boston_p1010764fixPts.jpg",
        np.zeros((8, 8)),
    )


def make_cat2000(root, categories=("Action", "Affective"), n=10):
    for cat in categories:
        for k in range(1, n + 1):
            jpeg(root / "Stimuli" / cat / f"{k:03d}.jpg", 27, 48)
            gray(root / "FIXATIONMAPS" / cat / f"{k:03d}.jpg", RNG.integers(0, 255, (27, 48)))
            locs = np.zeros((27, 48), np.uint8)
            locs[3, 4] = locs[20, 40] = 1
            (root / "FIXATIONLOCS" / cat).mkdir(parents=True, exist_ok=True)
            scipy.io.savemat(root / "FIXATIONLOCS" / cat / f"{k:03d}.mat", {"fixLocs": locs})
    jpeg(root / "Stimuli" / "Action" / "Output" / "model.jpg", 8, 8)  # to be skipped


def test_salicon_layout(tmp_path):
    make_salicon(tmp_path)
    ds = open_dataset("salicon", tmp_path)
    train, val = ds.samples("train"), ds.samples("val")
    assert len(train) == len(val) == 3 and len(ds.samples()) == 6
    f = train[0].fixations
    assert f.shape == (48, 64)
    # (10,5) -> 0-based (9,4); (64,48) -> (63,47) is the last pixel; (70,20) is outside
    assert len(f) == 3
    assert (9.0, 4.0) in set(zip(f.xs, f.ys, strict=True))
    assert sorted(set(f.subjects.tolist())) == [0, 1]
    assert train[0].saliency_map.name == f"{train[0].name}.png"


def test_mit1003_layout_and_stray_file(tmp_path):
    make_mit1003(tmp_path)
    ds = open_dataset("mit1003", tmp_path)
    all_ = ds.samples()
    assert len(all_) == 10 and all(s.name.startswith("i0") for s in all_)
    f = all_[0].fixations
    assert f.shape == (40, 50) and len(f) == 2
    assert {(20.0, 10.0), (5.0, 30.0)} == set(zip(f.xs, f.ys, strict=True))
    train, val = ds.samples("train"), ds.samples("val")
    assert len(train) == 8 and len(val) == 2  # 803/1003 of 10
    idx = official_permutation(10)
    assert [s.name for s in val] == [all_[i].name for i in idx[8:]]


def test_mit1003_loader_gives_the_official_split_of_1003_images(tmp_path):
    """Through the loader: 803/200, disjoint, stable across opens, and the official indices
    (RandomState(42).shuffle over the sorted stems)."""
    make_mit1003(tmp_path, n=1003)
    ds = open_dataset("mit1003", tmp_path)
    train, val = ds.samples("train"), ds.samples("val")
    assert len(train) == 803 and len(val) == 200
    names = [s.name for s in ds.samples()]
    assert not {s.name for s in train} & {s.name for s in val}
    assert {s.name for s in train} | {s.name for s in val} == set(names)
    order = np.arange(1003)
    np.random.RandomState(42).shuffle(order)
    assert [s.name for s in val] == [names[i] for i in order[803:]]
    again = open_dataset("mit1003", tmp_path).samples("val")
    assert [s.name for s in again] == [s.name for s in val]


def test_cat2000_layout_split_stratified(tmp_path):
    make_cat2000(tmp_path)
    ds = open_dataset("cat2000", tmp_path)
    all_, train, val = ds.samples(), ds.samples("train"), ds.samples("val")
    assert len(all_) == 20 and len(train) == 16 and len(val) == 4
    for cat in ("Action", "Affective"):  # 80/20 within every category
        assert sum(s.name.startswith(cat) for s in train) == 8
    assert not any("Output" in str(s.image) for s in all_)
    f = all_[0].fixations
    assert f.shape == (27, 48) and {(4.0, 3.0), (40.0, 20.0)} == set(zip(f.xs, f.ys, strict=True))


def test_folder_with_maps_and_csv(tmp_path):
    for k in range(5):
        jpeg(tmp_path / "images" / f"p{k}.png", 30, 40)
    m = np.zeros((30, 40))
    m[15, 20] = 255
    gray(tmp_path / "maps" / "p0.png", m)
    with open(tmp_path / "fixations.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "x", "y", "subject"])
        for k in range(1, 5):
            w.writerow([f"p{k}.png", 3.0, 4.0, 0])
            w.writerow([f"p{k}", 39.0, 29.0, 1])
            w.writerow([f"p{k}", 45.0, 2.0, 1])  # outside: dropped
    ds = open_dataset("folder", tmp_path)
    samples = {s.name: s for s in ds.samples()}
    assert len(samples) == 5
    assert set(zip(samples["p1"].fixations.xs, samples["p1"].fixations.ys, strict=True)) == {
        (3.0, 4.0),
        (39.0, 29.0),
    }
    assert samples["p0"].saliency_map is not None
    assert (20.0, 15.0) in set(
        zip(samples["p0"].fixations.xs, samples["p0"].fixations.ys, strict=True)
    )
    assert len(ds.samples("train")) == 4 and len(ds.samples("val")) == 1


def test_bad_roots_are_clear(tmp_path):
    for name in ("osie", "salicon", "mit1003", "cat2000", "folder"):
        with pytest.raises(FileNotFoundError):
            open_dataset(name, tmp_path)
    with pytest.raises(ValueError, match="unknown dataset"):
        open_dataset("nope", tmp_path)


def test_osie_full_release_takes_the_official_split(tmp_path, osie_root):
    """A 700-image OSIE root splits like the official code (RandomState(42), 500/200)."""
    from msinet.data.osie import OSIE

    ds = OSIE(osie_root)
    samples = ds.samples()
    ds.__dict__["_all"] = samples + samples[:100]  # 700 entries, as the full release
    val = ds.samples("val")
    assert len(ds.samples("train")) == 500 and len(val) == 200
    idx = official_permutation(700)
    assert val[0] is ds.__dict__["_all"][idx[500]]


@pytest.mark.parametrize("shape, sigma", [((600, 800), 24.0), ((37, 51), 3.3), ((5, 7), 16.0)])
def test_fast_blur_equals_scipys_gaussian_filter(shape, sigma):
    from scipy.ndimage import gaussian_filter

    from msinet.data.fixations import blur

    counts = np.zeros(shape)
    rng = np.random.default_rng(1)
    np.add.at(counts, (rng.integers(0, shape[0], 50), rng.integers(0, shape[1], 50)), 1)
    ref = gaussian_filter(counts, sigma, mode="constant", truncate=4.0)
    np.testing.assert_allclose(blur(counts, sigma), ref / ref.max(), atol=1e-12)
    assert not blur(np.zeros(shape), sigma).any()


def test_fast_blur_on_real_fixations(osie_root):
    from scipy.ndimage import gaussian_filter

    from msinet.data.osie import OSIE

    counts = OSIE(osie_root).samples("val")[0].fixations.counts().astype(np.float64)
    ref = gaussian_filter(counts, 24.0, mode="constant", truncate=4.0)
    np.testing.assert_allclose(
        OSIE(osie_root).samples("val")[0].fixations.density(24.0), ref / ref.max(), atol=1e-12
    )
