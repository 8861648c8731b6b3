"""CAM, Grad-CAM(++), saliency, SmoothGrad, activations, filter visualisation and the CLI."""
import shutil

import numpy as np
import pytest
from PIL import Image

import models
import tinygrad_edu as tg
from tinygrad_edu import nn, viz
from tinygrad_edu.viz.activations import Trace, VizError

SMALL = {"channels": (4, 8)}  # small CNN2 / CNN2-GAP: fast, same layer names


def cnn2(gap: bool = False, seed: int = 0):
    tg.manual_seed(seed)
    return models.get_model("cnn2_gap" if gap else "cnn2", **SMALL)


def digits(n: int = 3, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 1, 28, 28)).astype(np.float32)


def logits_of(model, x) -> np.ndarray:
    return viz.predict(model, x)


# ---- CAM -------------------------------------------------------------------------------------

def test_gradcam_equals_cam_up_to_positive_scale_for_gap_head():
    model, x = cnn2(gap=True), digits()
    cam = viz.cam(model, x)
    grad = viz.grad_cam(model, x, layer="features.pool2", relu=False)  # the maps GAP averages
    scale = (grad * cam).sum() / (cam * cam).sum()
    assert scale > 0
    np.testing.assert_allclose(grad, scale * cam, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(viz.normalize(np.maximum(grad, 0)),
                               viz.normalize(np.maximum(cam, 0)), atol=1e-5)


@pytest.mark.parametrize("gap", [False, True])
def test_cam_sums_to_logit_minus_bias(gap):
    model, x = cnn2(gap=gap), digits(4)
    targets = [3, 7, 0, 9]
    maps = viz.cam(model, x, target=targets)
    assert maps.shape == (4, 7, 7)
    logits = logits_of(model, x)
    bias = model.classifier.fc.bias.array
    expected = logits[np.arange(4), targets] - bias[targets]
    np.testing.assert_allclose(maps.sum((1, 2)), expected, rtol=1e-4, atol=1e-6)


def test_cam_without_a_head_it_understands_is_a_clear_error():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 26 * 26, 8),
                          nn.ReLU(), nn.Linear(8, 3))
    with pytest.raises(VizError, match="Grad-CAM works for any conv layer"):
        viz.cam(model, digits(1))


# ---- gradient methods ------------------------------------------------------------------------

def test_saliency_of_a_linear_model_is_its_weights():
    tg.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    maps = viz.saliency(model, digits(2), target=[4, 6])
    w = np.abs(model[1].weight.array).reshape(10, 28, 28)
    np.testing.assert_allclose(maps, w[[4, 6]], rtol=1e-6)


def test_smoothgrad_without_noise_is_saliency():
    model, x = cnn2(), digits(2)
    np.testing.assert_allclose(viz.smooth_grad(model, x, samples=2, noise=0.0),
                               viz.saliency(model, x), rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("method", ["cam", "gradcam", "gradcam++", "saliency", "smoothgrad"])
def test_a_batch_gives_one_map_per_image_with_its_own_target(method):
    fn = viz.METHODS[method]
    kwargs = {"samples": 2} if method == "smoothgrad" else {}
    model, x = cnn2(gap=True), digits(5)
    targets = [0, 1, 2, 3, 9]
    tg.manual_seed(0)
    batch = fn(model, x, target=targets, **kwargs)
    assert len(batch) == 5
    for i in (0, 4) if method != "smoothgrad" else ():  # smoothgrad's noise differs per call
        one = fn(model, x[i:i + 1], target=targets[i], **kwargs)
        np.testing.assert_allclose(batch[i], one[0], rtol=1e-4, atol=1e-7)
    predicted = logits_of(model, x).argmax(1)
    tg.manual_seed(0)  # the same noise for both smoothgrad calls
    default = fn(model, x, **kwargs)  # the predicted class of each image
    tg.manual_seed(0)
    explicit = fn(model, x, target=predicted, **kwargs)
    np.testing.assert_allclose(default, explicit, rtol=1e-5, atol=1e-9)
    assert not np.allclose(default, fn(model, x, target=(predicted + 1) % 10, **kwargs))


def test_targets_are_checked():
    model, x = cnn2(), digits(2)
    with pytest.raises(VizError, match="0..9"):
        viz.grad_cam(model, x, target=10)
    with pytest.raises(VizError, match="one class per image"):
        viz.grad_cam(model, x, target=[1, 2, 3])


def test_gradcam_pp_is_nonnegative_and_differs_from_gradcam():
    model, x = cnn2(), digits(2)
    pp, plain = viz.grad_cam_pp(model, x), viz.grad_cam(model, x)
    assert pp.shape == plain.shape == (2, 14, 14) and (pp >= 0).all()
    assert not np.allclose(viz.normalize(pp), viz.normalize(plain))


def test_visualising_leaves_no_gradients_and_keeps_the_mode():
    model = cnn2()
    model.train()
    viz.grad_cam(model, digits(1))
    viz.saliency(model, digits(1))
    assert all(p.grad is None and p.requires_grad for p in model.parameters())
    assert all(m.training for m in model.modules())


# ---- normalisation and pictures ---------------------------------------------------------------

def test_constant_maps_and_activations_give_zeros_not_nan():
    assert np.array_equal(viz.normalize(np.full((2, 5, 5), 3.0)), np.zeros((2, 5, 5)))
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Flatten(), nn.Linear(2 * 28 * 28, 3))
    x = np.zeros((2, 1, 28, 28), np.float32)  # conv output = its bias: constant maps
    maps = viz.grad_cam(model, x, relu=False)
    assert np.ptp(maps[0]) < 1e-6
    pictures = viz.overlay_maps(x, maps)  # jet raises on NaN, so this checks it too
    assert len(pictures) == 2 and pictures[0].shape == (28, 28, 3)
    grid = viz.activation_grid(viz.layer_activations(model, x, "0")[0])
    assert grid.dtype == np.uint8


def test_upsample_and_overlay_shapes():
    maps = np.random.default_rng(0).random((3, 7, 7))
    assert viz.upsample(maps, (28, 28)).shape == (3, 28, 28)
    pictures = viz.overlay_maps(digits(3), maps)
    assert [p.shape for p in pictures] == [(28, 28, 3)] * 3


# ---- layers, outputs, activations ------------------------------------------------------------

def test_list_layers_and_default_layer():
    model = cnn2()
    layers = dict(viz.list_layers(model, (1, 28, 28)))
    assert layers["features.conv1"] == (1, 4, 28, 28)
    assert layers["features.pool2"] == (1, 8, 7, 7)
    assert layers["classifier.fc"] == (1, 10)
    assert viz.default_layer(model) == "features.conv2"
    assert viz.layer_activations(model, digits(2)).shape == (2, 8, 14, 14)


def test_unknown_layer_name_lists_the_valid_names():
    with pytest.raises(VizError, match=r"valid names: .*features\.conv1.*classifier\.fc"):
        viz.grad_cam(cnn2(), digits(1), layer="conv9")


def test_non_feature_layer_names_the_conv_layers():
    with pytest.raises(VizError, match="conv layers: features.conv1, features.conv2"):
        viz.grad_cam(cnn2(), digits(1), layer="classifier.fc")


class TwoHeads(nn.Module):
    """A model with a dict output: a digit head and a parity head."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.flatten = nn.Flatten()
        self.digit = nn.Linear(4 * 14 * 14, 10)
        self.parity = nn.Linear(4 * 14 * 14, 2)

    def forward(self, x):
        h = self.flatten(self.body(x))
        return {"digit": self.digit(h), "parity": self.parity(h)}


def test_multi_output_models_choose_the_head_by_name_or_index():
    tg.manual_seed(0)
    model, x = TwoHeads(), digits(2)
    parity = Trace(model, x, grad=False, output="parity").logits()
    assert parity.shape == (2, 2)
    maps = viz.cam(model, x, output="parity")
    t = parity.argmax(1)
    np.testing.assert_allclose(maps.sum((1, 2)),
                               parity[[0, 1], t] - model.parity.bias.array[t], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(viz.grad_cam(model, x, output=1), viz.grad_cam(model, x,
                               output="parity"))
    assert viz.saliency(model, x, output="digit").shape == (2, 28, 28)
    with pytest.raises(VizError, match="heads"):
        viz.grad_cam(model, x, output="colour")


# ---- filters and weights ---------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 64, 64)])
def test_gradient_ascent_raises_the_filter_activation_tenfold(shape):
    tg.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(shape[0], 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
    # 28x28: L2, jitter and total variation; 64x64 RGB: the defaults (L2, jitter, blur, TV)
    regularisers = {"blur_every": 0} if shape[0] == 1 else {}
    images, history = viz.visualize_filters(model, "4", channels=[0, 2, 3], input_shape=shape,
                                            steps=50, **regularisers)
    assert images.shape == (3, *shape) and history.shape == (3, 51)
    assert (history[:, 0] > 0).all()
    assert (history[:, -1] >= 10 * history[:, 0]).all(), history[:, [0, -1]]
    assert viz.filter_grid(images).dtype == np.uint8


def test_first_layer_weights_as_images():
    model = cnn2()
    w = viz.conv_weights(model)
    np.testing.assert_array_equal(w, model.features.conv1.weight.array)
    grid = viz.weight_grid(w, title="conv1")
    assert grid.ndim == 3 and grid.shape[2] == 3
    with pytest.raises(VizError, match="conv layers"):
        viz.conv_weights(model, "classifier.fc")


# ---- PyTorch twins ---------------------------------------------------------------------------

@pytest.mark.parametrize("gap", [False, True])
def test_scratch_and_torch_twin_give_the_same_maps(gap):
    pytest.importorskip("torch")
    model, x = cnn2(gap=gap), digits(2)
    twin = models.to_torch(model)
    for method, fn in viz.METHODS.items():
        kwargs = {"samples": 2} if method == "smoothgrad" else {}
        tg.manual_seed(3)
        mine = fn(model, x, **kwargs)
        tg.manual_seed(3)
        theirs = fn(twin, x, **kwargs)
        np.testing.assert_allclose(mine, theirs, rtol=1e-3, atol=1e-6 * np.abs(mine).max(),
                                   err_msg=method)
    np.testing.assert_allclose(viz.layer_activations(model, x), viz.layer_activations(twin, x),
                               rtol=1e-4, atol=1e-6)
    assert viz.list_layers(model, (1, 28, 28)) == viz.list_layers(twin, (1, 28, 28))
    assert all(p.grad is None for p in twin.parameters())


# ---- the command line ------------------------------------------------------------------------

@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "model.npz"
    model = cnn2(gap=True)
    tg.save({"model": model.state_dict(), "model_name": "cnn2_gap",
             "model_config": model.config}, path)
    return str(path)


@pytest.fixture
def digit_png(tmp_path):
    img = np.full((40, 30), 255, np.uint8)  # a dark stroke on white: the CLI inverts it
    img[5:35, 13:17] = 0
    path = tmp_path / "digit.png"
    Image.fromarray(img).save(path)
    return str(path)


def run_cli(*argv):
    from experiments import visualize
    return visualize.main([str(a) for a in argv])


def test_cli_end_to_end_on_a_random_weight_checkpoint(tmp_path, checkpoint, digit_png):
    out = tmp_path / "out"
    model_args = ("--model", "cnn2", "--checkpoint", checkpoint)  # the shapes differ from cnn2
    with pytest.raises(SystemExit):
        run_cli(digit_png, *model_args, "--out", out)
    for method in ("gradcam", "cam", "activations", "weights"):
        figures = run_cli(digit_png, "--checkpoint", checkpoint, "--method", method,
                          "--out", out, "--logdir", tmp_path / "tb")
        assert figures and all(f.dtype == np.uint8 for f in figures.values())
    names = sorted(p.name for p in out.iterdir())
    assert "cnn2_gap_scratch_gradcam.png" in names and "cnn2_gap_scratch_cam.png" in names
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "tb").iterdir())
    figures = run_cli(digit_png, "--compare", checkpoint, checkpoint, "--method", "gradcam",
                      "--out", out)
    assert list(figures) == ["compare_gradcam"]


def test_cli_list_layers(checkpoint, capsys):
    run_cli("--checkpoint", checkpoint, "--list-layers")
    printed = capsys.readouterr().out
    assert "features.conv2" in printed and "(1, 8, 7, 7)" in printed


@pytest.mark.parametrize("problem", ["missing image", "unknown layer", "bad checkpoint"])
def test_cli_bad_input_is_one_sentence_and_exit_code_2(problem, tmp_path, checkpoint, digit_png,
                                                       capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a checkpoint")
    argv = {"missing image": (tmp_path / "nope.png", "--checkpoint", checkpoint),
            "unknown layer": (digit_png, "--checkpoint", checkpoint, "--layer", "conv9"),
            "bad checkpoint": (digit_png, "--checkpoint", bad)}[problem]
    with pytest.raises(SystemExit) as exit_info:
        run_cli(*argv, "--out", tmp_path)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert {"missing image": "does not exist", "unknown layer": "valid names",
            "bad checkpoint": "cannot read checkpoint"}[problem] in err


def test_cli_shows_torch_runs_and_pt_files_through_the_twin(tmp_path, checkpoint, digit_png):
    torch = pytest.importorskip("torch")
    from experiments import visualize
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.json").write_text('{"summary": {"framework": "torch"}}')
    shutil.copy(checkpoint, run_dir / "checkpoint.npz")
    scratch = visualize.load_model(checkpoint, None)
    twin = visualize.load_model(str(run_dir), None)
    assert twin.framework == "torch" and isinstance(twin.model, torch.nn.Module)
    pt = tmp_path / "twin.pt"  # torch.save of a default-size twin's state dict
    torch.save(models.get_torch_model("cnn2_gap").state_dict(), pt)
    assert visualize.load_model(str(pt), "cnn2_gap").label == "cnn2_gap torch"
    with pytest.raises(visualize.UsageError, match="does not fit model 'cnn2'"):
        visualize.load_model(str(pt), "cnn2")
    x = visualize.image_file(digit_png, scratch).x
    np.testing.assert_allclose(viz.grad_cam(scratch.model, x), viz.grad_cam(twin.model, x),
                               rtol=1e-4, atol=1e-8)
    figures = run_cli(digit_png, "--compare", checkpoint, run_dir, "--method", "cam",
                      "--out", tmp_path)
    assert figures["compare_cam"].shape[1] > 3 * 112


# ---- viz.images: arrays, colour maps, grids --------------------------------------------------

def test_to_rgb_accepts_hw_chw_hwc_and_scales_floats():
    gray = np.linspace(0, 1, 12).reshape(3, 4)
    rgb = viz.to_rgb(gray)
    assert rgb.shape == (3, 4, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == [0, 0, 0] and rgb[-1, -1].tolist() == [255, 255, 255]
    np.testing.assert_array_equal(viz.to_rgb(gray[None]), rgb)  # (1, H, W)
    chw = np.random.default_rng(0).random((3, 4, 5))
    np.testing.assert_array_equal(viz.to_rgb(chw), viz.to_rgb(chw.transpose(1, 2, 0)))
    np.testing.assert_array_equal(viz.to_rgb(gray * 10 - 3, normalize=True), rgb)
    with pytest.raises(ValueError, match="expected an image of shape"):
        viz.to_rgb(np.zeros((4, 5, 2)))


def test_colour_maps_are_matplotlibs_and_refuse_nan():
    from matplotlib import colormaps
    x = np.array([0.0, 0.3, 1.0, 2.0])
    expected = colormaps["jet"](np.clip(x, 0, 1), bytes=True)[:, :3]
    np.testing.assert_array_equal(viz.jet(x), expected)
    assert viz.blues(0.0).sum() > viz.blues(1.0).sum()  # light to dark
    with pytest.raises(ValueError, match="NaN or inf"):
        viz.jet([0.2, np.nan])


def test_overlay_blends_and_resizes_the_heat_map():
    image = np.full((8, 8), 0.5)
    heat = np.ones((2, 2))
    np.testing.assert_array_equal(viz.overlay(image, heat, alpha=0.0), viz.to_rgb(image))
    np.testing.assert_array_equal(viz.overlay(image, heat, alpha=1.0), viz.jet(np.ones((8, 8))))


def test_make_grid_tiles_arrays_and_draws_captions_with_matplotlib():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 1, 6, 7), dtype=np.uint8)
    grid = viz.make_grid(images, nrow=3, padding=2)
    assert grid.shape == (2 + 2 * (6 + 2), 2 + 3 * (7 + 2), 3)
    np.testing.assert_array_equal(grid[10:16, 11:18, 0], images[4, 0])  # row 1, column 1
    assert grid[:2].max() == 0  # padding
    captioned = viz.make_grid(images, nrow=3, captions=[f"p {i}" for i in range(5)])
    assert captioned.shape[0] > grid.shape[0] and captioned.shape[1] > grid.shape[1]
    with pytest.raises(ValueError, match="2 captions for 5 images"):
        viz.make_grid(images, captions=["a", "b"])
    with pytest.raises(ValueError, match="same size"):
        viz.make_grid([np.zeros((4, 4)), np.zeros((5, 4))])


def test_save_png_round_trips_and_leaves_no_temporary_file(tmp_path):
    import os
    image = np.random.default_rng(0).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    path = tmp_path / "sub" / "x.png"
    viz.save_png(path, image)
    np.testing.assert_array_equal(np.asarray(Image.open(path)), image)
    assert os.listdir(tmp_path / "sub") == ["x.png"]


# ---- figures of a run (matplotlib) -----------------------------------------------------------

def history_of(epochs: int) -> dict:
    e = np.arange(1, epochs + 1)
    return {"train_loss": list(1 / e), "val_loss": list(1.2 / e), "train_acc": list(1 - 0.5 / e),
            "val_acc": list(1 - 0.6 / e)}


def text_of(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")) if t.get_text()]


@pytest.mark.parametrize("epochs", [1, 3, 30])
def test_learning_curves_have_titled_axes_integer_epochs_markers_and_an_outside_legend(epochs):
    fig = viz.plot_learning_curves(history_of(epochs), title="cnn3")
    loss, acc = fig.axes
    assert (loss.get_xlabel(), loss.get_ylabel(), acc.get_ylabel()) == ("epoch", "loss",
                                                                        "accuracy")
    for ax in (loss, acc):
        assert [line.get_marker() for line in ax.get_lines()] == ["o", "o"]
        lo, hi = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
        assert lo < 1 and hi > epochs  # a single point is inside the axes, not on its edge
        fig.canvas.draw()
        legend, frame = ax.get_legend().get_window_extent(), ax.get_window_extent()
        assert legend.x0 >= frame.x1  # the legend is beside the data, never over it
    assert [t.get_text() for t in loss.get_legend().get_texts()] == ["train", "validation"]


def test_confusion_matrix_of_ten_classes_is_annotated_and_of_96_has_every_tick():
    cm = np.full((10, 10), 0.01) + np.eye(10) * 0.9
    fig = viz.plot_confusion_matrix(cm, [str(d) for d in range(10)], title="test")
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("predicted class",
                                                                  "true class", "test")
    assert sum(t.get_text() == "0.91" for t in ax.texts) == 10 and len(ax.texts) == 100
    assert len(fig.axes) == 2  # the colour bar
    names = [f"class_{i:02d}" for i in range(96)]
    big = viz.plot_confusion_matrix(np.eye(96), names)
    ax = big.axes[0]
    assert not ax.texts and [t.get_text() for t in ax.get_yticklabels()] == names
    assert len(big.axes) == 2 and "square-root" in big.axes[1].get_ylabel()
    image = viz.to_array(big)
    assert image.shape[0] >= 96 * 12  # at least 12 pixels a class
    with pytest.raises(ValueError, match="3 labels for a 2x2 matrix"):
        viz.heatmap_image(np.eye(2), labels=["a", "b", "c"])


def test_topk_captions_give_prediction_probability_and_truth_and_mark_the_wrong_ones():
    images = np.random.default_rng(0).random((3, 2, 1, 8, 8))
    probs = np.array([[0.9, 0.8], [0.7, 0.6], [0.5, 0.4]])
    truth = np.array([[0, 0], [1, 2], [2, 2]])
    fig = viz.plot_topk(images, probs, ["zero", "one", "two"], truth)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "pred zero  p=0.900\ntrue zero"
    assert titles[3] == "pred one  p=0.600\ntrue two  WRONG"
    colours = [ax.title.get_color() for ax in fig.axes]
    assert colours.count("red") == 1 and colours[3] == "red"
    with pytest.raises(ValueError, match=r"expected images \(C, k, ...\)"):
        viz.plot_topk(images, probs[:2], ["zero", "one", "two"])


def test_f_score_bars_show_each_class_and_the_macro_average():
    from tinygrad_edu import metrics
    pred, target = np.array([0, 1, 1, 2, 2, 2]), np.array([0, 1, 2, 2, 2, 1])
    scores = metrics.precision_recall_f1(pred, target, 3)
    ax = viz.plot_f_scores(scores, ["a", "b", "c"]).axes[0]
    assert len(ax.patches) == 9  # precision, recall, F1 for 3 classes
    np.testing.assert_allclose([p.get_height() for p in ax.patches[6:]], scores["f1"])
    assert f"macro F1 {scores['macro']['f1']:.3f}" in [t.get_text()
                                                       for t in ax.get_legend().get_texts()]


def test_activation_tiles_are_numbered_and_as_large_for_4x4_maps_as_for_28x28():
    small = viz.plot_activations(np.random.default_rng(0).random((16, 4, 4)), title="conv2")
    large = viz.plot_activations(np.random.default_rng(0).random((16, 28, 28)), title="conv1")
    assert [ax.get_title() for ax in small.axes[:3]] == ["ch 0", "ch 1", "ch 2"]
    for fig in (small, large):
        fig.canvas.draw()
    assert small.axes[0].get_window_extent().width == pytest.approx(
        large.axes[0].get_window_extent().width, rel=0.05)
    assert small.axes[0].get_window_extent().width > 80  # pixels at 100 dpi


def test_cam_figures_overlay_each_map_with_captions_and_a_colour_bar():
    x, maps = digits(3), np.random.default_rng(0).random((3, 7, 7))
    fig = viz.plot_cam(x, maps, captions=["7", "2", "1"], title="Grad-CAM")
    assert [ax.get_title() for ax in fig.axes[:3]] == ["7", "2", "1"]
    assert all(len(ax.images) == 2 for ax in fig.axes[:3])  # the input, the map over it
    cmp = viz.plot_cam_comparison(x, {"CAM": maps, "Grad-CAM": maps[:, :3, :3]},  # 7x7, 3x3
                                  captions=["a", "b", "c"])
    assert [ax.get_title() for ax in cmp.axes[:9:3]] == ["a", "CAM", "Grad-CAM"]
    with pytest.raises(ValueError, match="2 maps for 3 images"):
        viz.plot_cam(x, maps[:2])


def test_figures_become_arrays_pngs_and_pdfs(tmp_path):
    import os
    fig = viz.plot_lines({"a": [(1, 0.5), (2, 0.25)]}, "loss of each trial", ylabel="loss")
    image = viz.to_array(fig)
    assert image.shape == (360, 640, 3) and image.dtype == np.uint8
    assert image.min() < 100 and image.max() == 255  # ink on white
    viz.save_figure(fig, tmp_path / "a.pdf")
    viz.save_figure(fig, tmp_path / "a.png")
    assert sorted(os.listdir(tmp_path)) == ["a.pdf", "a.png"]
    assert (tmp_path / "a.pdf").read_bytes()[:4] == b"%PDF"
    png = np.asarray(Image.open(tmp_path / "a.png"))[:, :, :3]
    assert png.shape == image.shape and np.abs(png.astype(int) - image).mean() < 0.1


def test_logger_writes_the_figures_to_tensorboard(tmp_path):
    from tinygrad_edu.logging import Logger, read_events
    with Logger(logdir=str(tmp_path)) as log:
        log.figure("curves", viz.plot_learning_curves(history_of(2)), step=2)
        log.topk_grid("top", np.zeros((2, 1, 4, 4)), np.ones((2, 1)), ["a", "b"], 2,
                      true_labels=[[0], [0]])
    ev = read_events(str(tmp_path))
    [(_, curves)] = ev.images["curves"]
    assert curves.shape == (380, 1100, 3)
    assert ev.images["top"][0][1].shape[2] == 3


# ---- filter visualisation from a blank image -------------------------------------------------

@pytest.mark.parametrize("name", ["spec_cnn", "lines_multihead", "cnn3"])
def test_filters_from_a_blank_image_show_a_pattern_on_every_conv_layer(name):
    tg.manual_seed(0)
    model = models.get_model(name, **({"hidden": 16} if name != "cnn3" else {}))
    shape = (3, 28, 28) if name == "lines_multihead" else (1, 28, 28)
    for layer in viz.conv_layer_names(model):
        images, history = viz.visualize_filters(model, layer, channels=[0, 1, 2],
                                                input_shape=shape, steps=20)
        assert (history[:, -1] > history[:, 0] + 1e-3).all(), (layer, history[:, [0, -1]])
        for image in images:  # not a flat block: a pattern in the middle, grey at the corners
            assert np.ptp(image) > 0.1, layer
            assert np.abs(image[:, :3, :3]).max() < 0.5 * np.abs(image).max(), layer


def test_the_mean_objective_of_a_first_conv_layer_paints_a_flat_block():
    """The negative control: why the default objective is the centre unit."""
    tg.manual_seed(0)
    model = models.get_model("spec_cnn", hidden=16)
    images, _ = viz.visualize_filters(model, "features.conv1", channels=[0], steps=20,
                                      objective="mean", blur_every=0, tv=0)
    centre = images[0, 0, 8:20, 8:20]
    assert np.ptp(centre) < 0.05 * np.abs(centre).max()
    with pytest.raises(VizError, match="objective must be one of"):
        viz.visualize_filters(model, objective="max")


def test_live_curves_follow_fit_epoch_by_epoch(capsys):
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    x = tg.tensor(np.random.default_rng(0).standard_normal((16, 1, 2, 2)).astype(np.float32))
    y = tg.tensor(np.arange(16) % 3)
    data = tg.data.DataLoader(tg.data.TensorDataset(x, y), batch_size=8)
    live = viz.LiveCurves(epochs=2, title="tiny")
    tg.train.fit(model, tg.optim.SGD(model.parameters(), lr=0.1), data, data, epochs=2,
                 progress=False, on_epoch_end=live)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("  ")[0] for line in lines] == ["tiny: epoch 1/2", "tiny: epoch 2/2"]
    assert "val_acc" in lines[-1]
    assert [len(line.get_xdata()) for line in live.figure.axes[0].get_lines()] == [2, 2]


def test_filter_images_of_a_first_layer_have_their_weights_beside_them():
    tg.manual_seed(0)
    model = models.get_model("spec_cnn", hidden=16)
    images, _ = viz.visualize_filters(model, "features.conv1", channels=[0, 1], steps=5)
    weights = viz.conv_weights(model)[:2]
    fig = viz.plot_filters(images, title="conv1", weights=weights)
    assert [ax.get_title() for ax in fig.axes] == ["ch 0", "w 0", "ch 1", "w 1"]
    assert fig.axes[0].images[0].get_array()[0, 0] == 128  # the blank corner stays mid grey
    with pytest.raises(ValueError, match="do not match the images"):
        viz.plot_filters(images, weights=viz.conv_weights(model)[:3])


def test_filter_images_are_cropped_to_what_the_ascent_drew():
    images = np.zeros((2, 1, 28, 28))
    images[0, 0, 10:15, 12:17] = 1.0  # a 5x5 pattern, the rest blank
    images[1, 0, 11, 13] = -2.0
    fig = viz.plot_filters(images)
    assert fig.axes[0].images[0].get_array().shape[:2] == (7, 7)  # 5x5 and a pixel of margin
    assert viz.plot_filters(images, crop=False).axes[0].images[0].get_array().shape[:2] == (28, 28)


def test_long_captions_wrap_to_their_tile_instead_of_overlapping():
    name = "length15_width3_red_angle165 and more"
    fig = viz.plot_images(np.zeros((2, 8, 8)), [name, "short"], ncols=2)
    first = fig.axes[0].get_title()
    assert "\n" in first and "".join(first.split()) == "".join(name.split())  # only wrapped
    assert fig.axes[1].get_title() == "short"
