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
    bias = model.classifier.fc.bias.data
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
    w = np.abs(model[1].weight.data).reshape(10, 28, 28)
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
                               parity[[0, 1], t] - model.parity.bias.data[t], rtol=1e-4, atol=1e-6)
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
    np.testing.assert_array_equal(w, model.features.conv1.weight.data)
    grid = viz.weight_grid(w, scale=2)
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
    x = visualize.image_file(digit_png, (1, 28, 28)).x
    np.testing.assert_allclose(viz.grad_cam(scratch.model, x), viz.grad_cam(twin.model, x),
                               rtol=1e-4, atol=1e-8)
    figures = run_cli(digit_png, "--compare", checkpoint, run_dir, "--method", "cam",
                      "--out", tmp_path)
    assert figures["compare_cam"].shape[1] > 3 * 112
