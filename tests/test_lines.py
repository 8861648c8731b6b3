"""The line dataset, the specified CNN and the multi-head network: drawing, files, errors,
PyTorch parity, Grad-CAM on each head, and the three experiments on a few images per class."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import models
import tinygrad_edu as tg
from experiments import lines_common, lines_multihead, lines_specified, lines_variations
from models.lines import (
    HEADS,
    LOSS_WEIGHTS,
    MultiHeadLoss,
    MultiHeadNet,
    SpecCNN,
    head_losses,
    multihead_loss,
    predict_attributes,
)
from tinygrad_edu import viz
from tinygrad_edu.data import DataError
from tinygrad_edu.data import lines as L
from tinygrad_edu.logging import read_events

TINY = {"channels": (4,), "hidden": 16}  # small networks for the parity tests


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


# ---------------------------------------------------------------- classes and attributes


def test_class_index_and_attributes_round_trip():
    assert L.NUM_CLASSES == 96 and L.ATTRIBUTE_SIZES == (2, 2, 2, 12)
    for c in (0, 1, 13, 50, 95):
        assert L.class_index(**L.class_attributes(c)) == c
    assert L.class_attributes(L.class_index(15, 3, "red", 90)) == {
        "length": 15, "width": 3, "colour": "red", "angle": 90}
    assert L.attribute_labels([0, 95]).tolist() == [[0, 0, 0, 0], [1, 1, 1, 11]]
    assert L.class_name(L.class_index(7, 1, "blue", 15)) == "length07_width1_blue_angle015"
    assert sorted(L.CLASS_NAMES) == list(L.CLASS_NAMES)  # folder order = class order


@pytest.mark.parametrize("attribute, bad", [("length", 9), ("width", 2), ("colour", "green"),
                                            ("angle", 10), ("angle", 180)])
def test_attribute_values_outside_the_sets_are_refused(attribute, bad):
    values = {"length": 7, "width": 1, "colour": "red", "angle": 0} | {attribute: bad}
    with pytest.raises(ValueError, match=f"{attribute}={bad!r} is not one of"):
        L.class_index(**values)
    with pytest.raises(ValueError, match="class indices must be in 0..95"):
        L.attribute_labels([96])
    with pytest.raises(ValueError, match="angle indices must be in 0..11"):
        L.render(np.array([[0, 0, 0, 12]]), np.array([[14.0, 14.0]]))


# ---------------------------------------------------------------- drawing


def test_axis_aligned_line_is_exact_and_coloured():
    # length 7, width 3, red, 0 degrees, centred on a pixel corner column: exact box coverage
    image = L.render(np.array([[0, 1, 1, 0]]), np.array([[14.0, 14.5]]))[0]
    assert image.shape == (28, 28, 3) and image.dtype == np.uint8
    assert not image[..., 1:].any()  # red only
    red = image[..., 0]
    assert np.array_equal(red[13:16, 11:17], np.full((3, 6), 255))  # x in [10.5, 17.5]
    assert np.array_equal(red[13:16, [10, 17]], np.full((3, 2), 128))  # the half-covered ends
    assert red.sum() == 255 * 3 * 6 + 128 * 6


def test_brightness_is_length_times_width_at_every_angle():
    labels = np.arange(L.NUM_CLASSES)
    attrs = L.attribute_labels(labels)
    images = L.render(attrs, np.full((96, 2), 14.0))
    total = images.astype(np.float64).sum((1, 2, 3)) / 255
    area = np.take(L.LENGTHS, attrs[:, 0]) * np.take(L.WIDTHS, attrs[:, 1])
    np.testing.assert_allclose(total, area, rtol=0.035)
    grey = (images.max(-1) > 0) & (images.max(-1) < 255)
    assert grey.any(axis=(1, 2)).all()  # anti-aliased: every line has partly covered pixels
    blue = attrs[:, 2] == 0
    assert not images[blue][..., 0].any() and not images[~blue][..., 2].any()


def test_generate_keeps_lines_inside_and_varies_position():
    images, labels = L.generate(per_class=20, seed=3)
    assert images.shape == (96 * 20, 28, 28, 3) and np.array_equal(labels, np.repeat(range(96), 20))
    border = np.concatenate([images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]], 1)
    assert not border.any()
    first_class = images[:20].max(-1) > 0  # (20, 28, 28)
    assert len({tuple(np.argwhere(m).mean(0).round(1)) for m in first_class}) == 20


def test_same_seed_same_arrays_other_seed_other_arrays():
    a, b, c = L.generate(2, seed=1), L.generate(2, seed=1), L.generate(2, seed=2)
    assert np.array_equal(a[0], b[0]) and not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_per_class_must_be_a_positive_integer(bad):
    with pytest.raises(ValueError, match="images per class must be a positive integer"):
        L.generate(per_class=bad)


# ---------------------------------------------------------------- files


def _all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_writing_twice_gives_byte_identical_files(tmp_path):
    first = L.write(tmp_path / "a", per_class=2, seed=5)
    L.write(tmp_path / "b", per_class=2, seed=5)
    files_a, files_b = _all_files(tmp_path / "a"), _all_files(tmp_path / "b")
    assert len(files_a) == 1 + 96 * 2 and files_a == files_b
    assert first == tmp_path / "a" / "lines_p2_s5.npz"
    L.write(tmp_path / "a", per_class=2, seed=5)  # writing over an existing set: same bytes
    assert _all_files(tmp_path / "a") == files_b


def test_image_folder_holds_the_arrays(tmp_path):
    path = L.write(tmp_path, per_class=3, seed=0)
    images, labels = L.load_arrays(path)
    folder = tmp_path / "lines_p3_s0"
    assert sorted(os.listdir(folder)) == list(L.CLASS_NAMES)
    for c in (0, 57, 95):
        files = sorted(os.listdir(folder / L.CLASS_NAMES[c]))
        assert files == ["00000.png", "00001.png", "00002.png"]
        read = np.stack([np.asarray(Image.open(folder / L.CLASS_NAMES[c] / f)) for f in files])
        assert np.array_equal(read, images[labels == c])


def test_output_directory_that_is_a_file(tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("not a folder")
    with pytest.raises(DataError, match="is a file; pass a directory"):
        L.write(target, per_class=1)
    assert L.main(["--out", str(target), "--per-class", "1"]) == 2
    assert "is a file" in capsys.readouterr().err
    assert target.read_text() == "not a folder"


def test_command_line_writes_both_forms(tmp_path, capsys):
    assert L.main(["--out", str(tmp_path), "--per-class", "1", "--seed", "4"]) == 0
    assert "96 images (1 per class)" in capsys.readouterr().out
    assert (tmp_path / "lines_p1_s4.npz").is_file() and (tmp_path / "lines_p1_s4").is_dir()
    assert L.main(["--out", str(tmp_path), "--per-class", "0"]) == 2
    assert "positive integer" in capsys.readouterr().err
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


# ---------------------------------------------------------------- the dataset


def test_dataset_generates_caches_and_gives_both_label_kinds(tmp_path):
    ds = L.LineDataset(tmp_path, per_class=2, transform=tg.data.transforms.ToTensor())
    assert (tmp_path / "lines_p2_s0.npz").is_file() and len(ds) == 192
    x, y = ds[5]
    assert x.shape == (3, 28, 28) and x.dtype == np.float32 and y == 2 and x.max() <= 1.0
    attrs = L.LineDataset(tmp_path, per_class=2, target_type="attributes", generate=False)
    assert attrs.targets.shape == (192, 4)
    assert np.array_equal(attrs.targets, L.attribute_labels(ds.targets))
    assert np.array_equal(attrs.data, ds.data) and attrs.classes[y] == L.class_name(2)


def test_dataset_errors_say_what_to_do(tmp_path):
    with pytest.raises(DataError, match="does not exist; pass generate=True or run python -m"):
        L.LineDataset(tmp_path, per_class=2, generate=False)
    with pytest.raises(ValueError, match="target_type must be one of"):
        L.LineDataset(tmp_path, target_type="angle")
    (tmp_path / "lines_p2_s0.npz").write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(DataError, match="not a readable line-dataset file.*delete it"):
        L.LineDataset(tmp_path, per_class=2)


def test_a_file_with_wrong_arrays_is_refused(tmp_path):
    path = tmp_path / "lines_p1_s0.npz"
    L.save_arrays(path, np.zeros((3, 28, 28), np.uint8), np.zeros(3, np.int64))
    with pytest.raises(DataError, match=r"expected \(N, 28, 28, 3\) uint8"):
        L.load_arrays(path)


# ---------------------------------------------------------------- the networks


def test_specified_cnn_shapes_and_layers():
    model = SpecCNN()
    assert model(tg.randn(2, 1, 28, 28)).shape == (2, 10)
    assert [n for n, _ in model.named_modules() if n.count(".") == 1] == [
        "features.conv1", "features.relu1", "features.bn1", "features.pool1",
        "classifier.flatten", "classifier.fc1", "classifier.relu", "classifier.fc"]
    assert model.classifier.fc1.weight.shape == (1024, 32 * 11 * 11)  # 28 -7+1 = 22, pooled 11
    lines = SpecCNN(in_channels=3, num_classes=96)
    assert lines(tg.randn(2, 3, 28, 28)).shape == (2, 96)


@pytest.mark.parametrize("options, flat", [
    ({"downsample": "stride"}, 32 * 11 * 11),
    ({"channels": (8, 16), "kernel_size": 5, "padding": 2}, 16 * 7 * 7),
    ({"kernel_size": 3, "dropout": 0.5}, 32 * 13 * 13)])
def test_variants_build_and_run(options, flat):
    model = SpecCNN(in_channels=3, num_classes=96, **options)
    assert model.classifier.fc1.weight.shape[1] == flat
    assert model(tg.randn(2, 3, 28, 28)).shape == (2, 96)
    assert type(model)(**model.config).config == model.config


def test_bad_network_options_are_explained():
    with pytest.raises(ValueError, match="SpecCNN: downsample must be one of"):
        SpecCNN(downsample="avg")
    with pytest.raises(ValueError, match="conv block 3 shrinks a 28x28 image to nothing"):
        SpecCNN(channels=(4, 4, 4))
    with pytest.raises(ValueError, match=r"MultiHeadNet: dropout must be in \[0, 1\)"):
        MultiHeadNet(dropout=1.0)


def _attribute_batch(n: int, seed: int = 0):
    images, labels = L.generate(1, seed)
    pick = np.random.default_rng(seed).permutation(96)[:n]
    x = images[pick].transpose(0, 3, 1, 2).astype(np.float64) / 255  # (n, 3, 28, 28)
    return x, L.attribute_labels(labels[pick])


def _train_step(model, opt, x, y) -> float:
    loss = multihead_loss(model(tg.Tensor(x)), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


def test_multihead_outputs_loss_and_predictions():
    model = MultiHeadNet(**TINY).double()
    x, y = _attribute_batch(6)
    out = model(tg.Tensor(x, dtype=np.float64))
    assert {k: v.shape for k, v in out.items()} == {
        "length": (6, 1), "width": (6, 1), "colour": (6, 1), "angle": (6, 12)}
    losses = head_losses(out, y)
    for k, name in enumerate(["length", "width", "colour"]):  # BCE written out
        p = 1 / (1 + np.exp(-out[name].detach().numpy()[:, 0]))
        expected = -np.mean(y[:, k] * np.log(p) + (1 - y[:, k]) * np.log(1 - p))
        assert losses[name].item() == pytest.approx(expected, rel=1e-10)
    total = multihead_loss(out, y, weights=(1, 2, 0, 0.5)).item()
    assert total == pytest.approx(losses["length"].item() + 2 * losses["width"].item()
                                  + 0.5 * losses["angle"].item(), rel=1e-12)
    pred = predict_attributes({"length": np.array([[0.3], [-1]]), "width": np.array([[-2], [1]]),
                               "colour": np.array([[5], [-5]]), "angle": np.eye(12)[[4, 11]]})
    assert pred.tolist() == [[1, 0, 1, 4], [0, 1, 0, 11]]


def test_multihead_loss_explains_bad_targets():
    out = MultiHeadNet(**TINY)(tg.randn(2, 3, 28, 28))
    with pytest.raises(ValueError, match=r"expected targets \(N, 4\).*target_type='attributes'"):
        multihead_loss(out, np.array([3, 5]))
    with pytest.raises(ValueError, match="expected 4 weights"):
        multihead_loss(out, np.zeros((2, 4), np.int64), weights=(1, 1))


def test_multihead_learns_on_a_few_batches():
    tg.manual_seed(0)
    model = MultiHeadNet(channels=(8,), hidden=64)
    images, labels = L.generate(1, seed=1)
    x = images.transpose(0, 3, 1, 2) / np.float32(255)
    y = L.attribute_labels(labels)
    opt = tg.optim.Adam(model.parameters(), lr=3e-3)
    losses = [_train_step(model, opt, x, y) for _ in range(20)]
    assert losses[-1] < 0.5 * losses[0]


# ---------------------------------------------------------------- Grad-CAM on each head


@pytest.mark.parametrize("head", list(HEADS))
def test_grad_cam_explains_each_head(head):
    tg.manual_seed(0)
    model = MultiHeadNet(channels=(4,), hidden=16)
    x, _ = _attribute_batch(3)
    maps = viz.grad_cam(model, x.astype(np.float32), output=head)
    assert maps.shape == (3, 22, 22) and (maps >= 0).all()  # at conv1: 28 - 7 + 1 = 22
    assert len(viz.overlay_maps(x, maps)) == 3


def test_grad_cam_of_different_heads_differs():
    tg.manual_seed(0)
    model = MultiHeadNet(channels=(4,), hidden=16)
    x = _attribute_batch(3)[0].astype(np.float32)
    maps = {h: viz.grad_cam(model, x, output=h, relu=False) for h in HEADS}
    assert not np.allclose(maps["length"], maps["angle"])


# ---------------------------------------------------------------- PyTorch twins


def _twins(torch, kind: str, dtype=np.float64):
    """A network and models.to_torch's twin of it (the registry's: to_torch(SpecCNN()) works)."""
    tg.manual_seed(0)
    if kind == "spec":
        model = SpecCNN(in_channels=3, num_classes=96, **TINY).to(dtype)
    else:
        model = MultiHeadNet(**TINY).to(dtype)
    twin = models.to_torch(model)
    assert type(twin).__name__ == ("TorchSpecCNN" if kind == "spec" else "TorchMultiHeadNet")
    assert type(models.from_torch(twin)) is type(model)
    return model, twin


def torch_multihead_loss(out, y, weights=LOSS_WEIGHTS):
    """The loss's twin through the same registry as the networks'."""
    return models.to_torch(MultiHeadLoss(weights))(out, y)


def _loss_and_grads(model, x, y, kind: str):
    model.zero_grad()
    out = model(tg.Tensor(x, dtype=x.dtype))
    loss = multihead_loss(out, y) if kind == "multi" else tg.nn.functional.cross_entropy(out, y)
    loss.backward()
    return loss.item(), {n: p.grad.detach().numpy() for n, p in model.named_parameters()}


def _torch_loss_and_grads(torch, twin, x, y, kind: str):
    twin.zero_grad()
    out = twin(torch.from_numpy(x))
    loss = (torch_multihead_loss(out, y) if kind == "multi"
            else torch.nn.functional.cross_entropy(out, torch.from_numpy(y)))
    loss.backward()
    return loss.item(), {n: p.grad.detach().numpy() for n, p in twin.named_parameters()}


def _gaps(torch, model, twin, kind: str) -> tuple[float, float]:
    x, y = _attribute_batch(8, seed=2)
    if kind == "spec":
        y = np.ravel_multi_index(y.T, L.ATTRIBUTE_SIZES)  # the 96-way labels
    loss, grads = _loss_and_grads(model, x, y, kind)
    t_loss, t_grads = _torch_loss_and_grads(torch, twin, x, y, kind)
    assert grads.keys() == t_grads.keys()
    return abs(loss - t_loss), max(np.abs(grads[n] - t_grads[n]).max() for n in grads)


@pytest.mark.parametrize("kind", ["spec", "multi"])
def test_twin_has_the_same_layers_and_outputs(torch, kind):
    model, twin = _twins(torch, kind)
    assert {k: tuple(v.shape) for k, v in twin.state_dict().items()} == \
        {k: v.shape for k, v in model.state_dict().items()}
    x = _attribute_batch(4)[0]
    model.eval()
    twin.eval()
    ours, theirs = model(tg.Tensor(x, dtype=np.float64)), twin(torch.from_numpy(x))
    if kind == "spec":
        ours, theirs = {"logits": ours}, {"logits": theirs}
    for name in ours:
        np.testing.assert_allclose(ours[name].detach().numpy(), theirs[name].detach().numpy(), atol=1e-12)


@pytest.mark.parametrize("kind", ["spec", "multi"])
def test_same_loss_and_gradients_as_torch_float64(torch, kind):
    loss_gap, grad_gap = _gaps(torch, *_twins(torch, kind), kind)
    assert loss_gap < 1e-10 and grad_gap < 1e-10


def test_parity_check_catches_a_changed_weight(torch):
    model, twin = _twins(torch, "multi")
    with torch.no_grad():
        twin.heads.angle.weight[3, 2] += 1e-3
    assert _gaps(torch, model, twin, "multi")[1] > 1e-6


def _torch_train_step(torch, twin, opt, x, y) -> float:
    loss = torch_multihead_loss(twin(torch.from_numpy(x)), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


def test_multihead_loss_curve_matches_torch_for_40_sgd_steps(torch):
    model, twin = _twins(torch, "multi", np.float32)
    images, labels = L.generate(1, seed=7)
    x = (images.transpose(0, 3, 1, 2) / np.float32(255)).astype(np.float32)
    y = L.attribute_labels(labels)
    opt, t_opt = tg.optim.SGD(model.parameters(), 0.02), torch.optim.SGD(twin.parameters(), 0.02)
    ours, theirs = [], []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on a busy shared machine torch's thread pool is 10x slower
    try:
        for step in range(40):
            batch = slice(32 * (step % 3), 32 * (step % 3 + 1))
            ours.append(_train_step(model, opt, x[batch], y[batch]))
            theirs.append(_torch_train_step(torch, twin, t_opt, x[batch], y[batch]))
    finally:
        torch.set_num_threads(threads)
    ours, theirs = np.array(ours), np.array(theirs)
    assert ours[-3:].mean() < 0.8 * ours[:3].mean(), "the network did not learn"
    assert np.max(np.abs(ours - theirs) / theirs) < 0.02


# ---------------------------------------------------------------- the experiments


SMALL = ["--per-class", "3", "--epochs", "1", "--batch-size", "32", "--no-progress"]


def _args(tmp_path) -> list[str]:
    return SMALL + ["--logdir", str(tmp_path / "runs"), "--data-dir", str(tmp_path / "data")]


def test_specified_cnn_run_directory(tmp_path):
    summary = lines_specified.main(_args(tmp_path))
    run_dir = Path(summary["run_dir"])
    for name in ("metrics.json", "checkpoint.npz", "report.html"):
        assert (run_dir / name).exists(), name
    saved = json.loads((run_dir / "metrics.json").read_text())["summary"]
    assert saved["status"] == "finished" and 0 <= saved["test_accuracy"] <= 1
    assert len(saved["f1_per_class"]) == 96
    events = read_events(str(run_dir))
    for tag in ("train/loss", "val/accuracy", "val/f1_macro", "test/f1_macro"):
        assert tag in events.scalars, tag
    assert "test/confusion_matrix" in events.images and events.hparams
    html = (run_dir / "report.html").read_text()
    assert "<svg" in html and "Most confused classes" in html and "length15_width3" in html


def test_multihead_run_reports_every_head(tmp_path):
    summary = lines_multihead.main(_args(tmp_path) + ["--loss-weights", "1,1,1,2"])
    assert set(summary["test_accuracy"]) == {"length", "width", "colour", "angle", "all"}
    assert summary["history"]["lr"][-1] < 1e-9  # the cosine decay reached 0
    run_dir = Path(summary["run_dir"])
    events = read_events(str(run_dir))
    for head in ["length", "width", "colour", "angle", "all"]:
        assert f"val/accuracy_{head}" in events.scalars and f"test/accuracy_{head}" in \
            events.scalars
    assert {f"test/confusion_{h}" for h in HEADS} <= set(events.images)
    html = (run_dir / "report.html").read_text()
    assert "Grad-CAM of each head" in html and html.count("data:image/png") == 5
    assert "Accuracy of each head" in html and "weighted loss" in html
    assert "training accuracy per head" in html and "test accuracy per head" in html
    val_metrics = summary["history"]["val_metrics"]
    assert all(0 <= m[f"train_accuracy_{h}"] <= 1 for m in val_metrics for h in HEADS)


def test_multihead_architecture_flags(tmp_path):
    summary = lines_multihead.main(_args(tmp_path) + ["--channels", "8,16", "--kernel-size", "5",
                                                      "--padding", "2", "--hidden", "32"])
    config = json.loads(Path(summary["run_dir"], "run.json").read_text())["model_config"]
    assert (config["channels"], config["kernel_size"], config["hidden"]) == ([8, 16], 5, 32)


def test_variations_table(tmp_path):
    result = lines_variations.main(_args(tmp_path) + ["--variants", "specified,strided"])
    md = Path(result["run_dir"], "variations.md").read_text()
    assert "| specified | none" in md and "| strided | stride-2" in md
    runs = [d for d in os.listdir(result["run_dir"]) if os.path.isdir(Path(result["run_dir"], d))]
    assert len(runs) == 2 and "variations.md" in os.listdir(result["run_dir"])  # a run each
    summary = json.loads(Path(result["run_dir"], "metrics.json").read_text())["summary"]
    assert summary["status"] == "finished" and set(summary["results"]) == {"specified",
                                                                           "strided"}


def test_lines_variations_twice_gives_the_same_numbers(tmp_path):
    """The runner seeds before each variant's build (weights, dropout, shuffling): the same
    command, run twice in one process, gives the same curves and weights (a run that drew from
    the generators where the previous one stopped would not)."""
    argv = _args(tmp_path) + ["--variants", "specified,dropout"]
    runs = [lines_variations.main(argv + ["--logdir", str(tmp_path / name)])["results"]
            for name in ("a", "b")]
    for variant in ("specified", "dropout"):
        saved = [json.loads(Path(r[variant]["run_dir"], "metrics.json").read_text())
                 for r in runs]
        for key in ("train_loss", "train_acc", "val_loss", "val_acc", "val_metrics"):
            assert saved[0]["summary"]["history"][key] == saved[1]["summary"]["history"][key]
        weights = [tg.load(Path(r[variant]["run_dir"], "checkpoint.npz"))["model"] for r in runs]
        for name, value in weights[0].items():
            np.testing.assert_array_equal(value.data, weights[1][name].data, err_msg=name)


def test_specified_cnn_architecture_flags(tmp_path):
    summary = lines_specified.main(_args(tmp_path) + ["--channels", "8,16", "--kernel-size", "5",
                                                      "--padding", "2", "--hidden", "32"])
    config = json.loads(Path(summary["run_dir"], "run.json").read_text())["model_config"]
    assert (config["channels"], config["kernel_size"], config["hidden"]) == ([8, 16], 5, 32)


@pytest.mark.parametrize("main, argv, message", [
    (lines_specified.main, ["--per-class", "0"], "--per-class must be a positive number"),
    (lines_specified.main, ["--dataset", "cifar"], "invalid choice: 'cifar'"),
    (lines_specified.main, ["--framework", "torch"], "train with tinygrad_edu"),
    (lines_specified.main, ["--hidden", "0"], "--hidden must be a positive number"),
    (lines_specified.main, ["--padding", "-1"], "--padding must be zero or more"),
    (lines_specified.main, ["--channels", "0"], "channels must be one or more positive"),
    (lines_multihead.main, ["--dataset", "mnist"], "--dataset lines"),
    (lines_multihead.main, ["--loss-weights", "1,2"], "--loss-weights takes 4"),
    (lines_multihead.main, ["--channels", "8,x"], "--channels takes filter counts"),
    (lines_multihead.main, ["--channels", "8,8,8,8", "--kernel-size", "7"], "to nothing"),
    (lines_multihead.main, ["--schedule", "step"], "--schedule step: the line experiments take"),
    (lines_variations.main, ["--schedule", "cosine"], "--schedule: each variant sets"),
    (lines_variations.main, ["--variants", "bigger"], "--variants: unknown bigger"),
])
def test_bad_input_is_one_sentence_and_exit_code_2(tmp_path, capsys, main, argv, message):
    with pytest.raises(SystemExit) as e:
        main(argv + ["--logdir", str(tmp_path)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err and "Traceback" not in err
    assert not os.listdir(tmp_path)


def test_a_run_that_raises_is_marked_failed(tmp_path):
    from experiments.run_record import RunRecord
    from experiments.runner import logged_run
    cfg = lines_common.LinesConfig(logdir=str(tmp_path))
    record = RunRecord("lines_specified", "spec_cnn", SpecCNN().config, cfg.framework, "lines",
                       lines_common.LINES_INPUT, ["a"], cfg.to_dict())

    def body(logger):
        raise RuntimeError("stop")
    with pytest.raises(RuntimeError, match="stop"):
        logged_run(cfg, record, "broken", body)
    (run_dir,) = tmp_path.iterdir()
    saved = json.loads((run_dir / "metrics.json").read_text())["summary"]
    assert saved["status"] == "failed" and saved["config"]["per_class"] == 1000
