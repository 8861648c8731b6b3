"""LeNet-5 (specified and improved) and ResNet-18: shapes, parameter counts, PyTorch twins with
the same outputs and gradients; then the Caltech-101 experiments end to end on two classes."""
import json
import os
from pathlib import Path

import numpy as np
import pytest

import models
import tinygrad_edu as tg
from experiments.caltech_common import DATA_DIR as CALTECH  # the repository's sibling shared/
from models.resnet import BasicBlock
from tinygrad_edu import nn
from tinygrad_edu.viz import list_layers

needs_caltech = pytest.mark.skipif(not CALTECH.is_dir(), reason=f"no Caltech-101 at {CALTECH}")


@pytest.fixture
def torch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    return torch


def images(n: int, size: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, size, size)).astype(np.float32)


def test_lenet5_is_the_specified_network():
    model = models.get_model("lenet5")
    shapes = dict(list_layers(model, (3, 64, 64)))
    assert shapes["features.conv1"] == (1, 32, 64, 64) and shapes["features.pool1"] == (1, 32, 16, 16)
    assert shapes["features.conv2"] == (1, 64, 16, 16) and shapes["features.pool2"] == (1, 64, 4, 4)
    assert [shapes[f"classifier.fc{i}"] for i in (1, 2, 3)] == [(1, 1021), (1, 84), (1, 101)]
    conv1, pool1 = model.features.conv1, model.features.pool1
    assert conv1.weight.shape == (32, 3, 5, 5) and conv1.stride in (1, (1, 1))
    assert pool1.kernel_size in (4, (4, 4)) and pool1.stride in (4, (4, 4))
    expected = (3 * 25 * 32 + 32) + (32 * 25 * 64 + 64) + (1024 * 1021 + 1021) + (1021 * 84 + 84) \
        + (84 * 101 + 101)
    assert model.num_parameters() == expected
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.Dropout)) for m in model.modules())


def test_improved_lenet5_adds_bn_dropout_and_xavier():
    tg.manual_seed(0)
    model = models.get_model("lenet5_improved")
    kinds = [type(m).__name__ for m in model.modules()]
    assert kinds.count("BatchNorm2d") == 2 and kinds.count("BatchNorm1d") == 2
    assert kinds.count("Dropout") == 2
    w = model.classifier.fc1.weight.array
    bound = np.sqrt(2) * np.sqrt(6 / (1024 + 1021))  # xavier_uniform with the ReLU gain
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    x = tg.Tensor(images(4))
    assert model(x).shape == (4, 101)
    model.eval()
    assert np.array_equal(model(x).array, model(x).array)  # no dropout in eval mode


def test_lenet5_checks_its_image_size():
    with pytest.raises(ValueError, match="LeNet5: image_size must be a multiple of 16"):
        models.LeNet5(image_size=60)


def test_resnet18_follows_the_paper():
    model = models.get_model("resnet18")
    shapes = dict(list_layers(model, (3, 64, 64)))
    assert shapes["features.conv1"] == (1, 64, 32, 32) and shapes["features.maxpool"] == (1, 64, 16, 16)
    expected = {1: (64, 16), 2: (128, 8), 3: (256, 4), 4: (512, 2)}
    for stage, (c, s) in expected.items():
        assert shapes[f"features.layer{stage}"] == (1, c, s, s)
        first = getattr(model.features, f"layer{stage}")[0]
        assert isinstance(first, BasicBlock)
        projected = not isinstance(first.shortcut, nn.Identity)
        assert projected == (stage > 1)
        if projected:
            assert first.shortcut.conv.weight.shape[2:] == (1, 1)
            assert first.shortcut.conv.stride in (2, (2, 2))
    assert shapes["classifier.avgpool"] == (1, 512, 1, 1) and shapes["classifier.fc"] == (1, 101)
    assert model.features.conv1.weight.shape == (64, 3, 7, 7)
    assert model.num_parameters() == 11_228_325  # torchvision's resnet18(num_classes=101)


@pytest.mark.parametrize("name", ["lenet5", "lenet5_improved", "resnet18"])
def test_twins_agree_in_eval_mode(torch, name):
    tg.manual_seed(1)
    model = models.get_model(name)
    twin = models.to_torch(model)
    model.eval()
    twin.eval()
    x = images(2, 32 if name == "resnet18" else 64)
    got = model(tg.Tensor(x)).array
    with torch.no_grad():
        want = twin(torch.from_numpy(x)).detach().numpy()
    assert np.allclose(got, want, rtol=1e-4, atol=1e-5)
    back = models.from_torch(twin)
    assert type(back) is type(model) and back.config == model.config


@pytest.mark.parametrize("name", ["lenet5", "resnet18"])
def test_twins_agree_on_training_gradients(torch, name):
    """Train mode (batch statistics in BN): the same loss and the same weight gradients, in
    float64 (17 batch norms over a few values each amplify float32 rounding)."""
    tg.manual_seed(2)
    model = models.get_model(name, num_classes=7).to(np.float64)
    twin = models.to_torch(model)
    x = images(2, 32 if name == "resnet18" else 64, seed=3).astype(np.float64)
    y = np.array([0, 6])
    loss = tg.nn.functional.cross_entropy(model(tg.Tensor(x, dtype=x.dtype)), tg.Tensor(y))
    loss.backward()
    t_loss = torch.nn.functional.cross_entropy(twin(torch.from_numpy(x)), torch.from_numpy(y))
    t_loss.backward()
    assert np.isclose(loss.item(), t_loss.item(), rtol=1e-8)
    grads = dict(twin.named_parameters())
    for pname, p in model.named_parameters():
        want = grads[pname].grad.detach().numpy()
        assert np.allclose(p.grad.array, want, rtol=1e-6, atol=1e-8 * np.abs(want).max()), pname
    if name == "resnet18":  # running statistics were updated the same way
        bn = model.features.layer2[0].bn1
        assert np.allclose(bn.running_var.array, twin.features.layer2[0].bn1.running_var.detach().numpy(),
                           rtol=1e-8)


def test_fresh_torch_twins_use_the_same_initialisation(torch):
    twin = models.get_torch_model("lenet5_improved")
    w = twin.classifier.fc1.weight.detach().numpy()
    assert np.abs(w).max() <= np.sqrt(2) * np.sqrt(6 / (1024 + 1021))
    res = models.get_torch_model("resnet18", num_classes=10)
    std = res.features.conv1.weight.detach().std().item()
    assert abs(std - np.sqrt(2 / (64 * 49))) < 0.1 * np.sqrt(2 / (64 * 49))  # He, fan_out


# ---- the experiments, on two classes of the real data -----------------------------------------

QUICK = ["--epochs", "1", "--subset", "64", "--batch-size", "32", "--image-size", "32",
         "--no-progress"]


@pytest.fixture
def quick_args(tmp_path, monkeypatch) -> list[str]:
    """Flags for a tiny run in tmp_path on two real classes (accordion, camera), with
    ImageFolder's cache in tmp_path too."""
    monkeypatch.setenv("TINYGRAD_EDU_DATA", str(tmp_path / "data"))
    two = tmp_path / "two_classes"
    two.mkdir()
    for name in ("accordion", "camera"):
        (two / name).symlink_to(CALTECH / name, target_is_directory=True)
    return QUICK + ["--logdir", str(tmp_path), "--data-dir", str(two)]


@needs_caltech
def test_lenet5_experiment_and_activation_figure(quick_args):
    from experiments import caltech_activations, caltech_lenet5
    from tinygrad_edu.logging import read_events

    summary = caltech_lenet5.main(quick_args)
    run_dir = summary["run_dir"]
    for name in ("metrics.json", "checkpoint.npz", "report.html"):
        assert os.path.exists(os.path.join(run_dir, name)), name
    saved = json.loads(Path(run_dir, "metrics.json").read_text())
    assert saved["summary"]["status"] == "finished" and saved["summary"]["classes"] == 2
    for tag in ("train/loss", "train/accuracy", "val/loss", "val/accuracy"):
        assert len(saved["scalars"][tag]) == 1, tag
    assert "<svg" in Path(run_dir, "report.html").read_text()

    out = caltech_activations.main(quick_args[-4:])  # --logdir, --data-dir
    assert out["checkpoint"] == os.path.join(run_dir, "checkpoint.npz")
    from PIL import Image
    width, height = Image.open(out["figure"]).size
    assert width > 3 * 64 * 2 and height > 2 * 64  # two rows: the image and two map grids
    tags = set(read_events(out["run_dir"]).images)
    assert "activations/figure" in tags
    assert "activations/features.relu2/camera/image_0001.jpg" in tags


@needs_caltech
def test_improved_torch_twin_run(quick_args, torch):
    from experiments import caltech_lenet5
    summary = caltech_lenet5.main(quick_args + ["--improved", "--framework", "torch"])
    assert summary["framework"] == "torch" and summary["model"] == "lenet5_improved"
    assert 0 <= summary["val_accuracy"] <= 1


def test_bad_data_dir_exits_with_a_sentence(tmp_path, capsys):
    from experiments import caltech_lenet5
    with pytest.raises(SystemExit) as e:
        caltech_lenet5.main(["--data-dir", str(tmp_path / "nowhere"), "--no-progress"])
    assert e.value.code == 2 and "101_ObjectCategories" in capsys.readouterr().err


def test_results_tables_and_targets(tmp_path):
    from experiments import caltech_results

    def fake_run(name, model, framework, val, status="finished"):
        scalars = {"val/accuracy": [[e + 1, v] for e, v in enumerate(val)]}
        for tag in ("train/accuracy", "val/loss", "time/epoch_seconds"):
            scalars[tag] = [[e + 1, 1.0] for e in range(len(val))]
        summary = {"status": status,
                   "config": {"model": model, "framework": framework, "epochs": 3}}
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps(
            {"summary": summary, "scalars": scalars}))

    fake_run("caltech_lenet5-tinygrad_edu-1", "lenet5", "tinygrad_edu", [0.3, 0.5])
    fake_run("caltech_lenet5-torch-1", "lenet5", "torch", [0.31, 0.52, 0.6])
    fake_run("caltech_lenet5_improved-tinygrad_edu-1", "lenet5_improved", "tinygrad_edu",
             [0.5, 0.72], status="running")
    text = caltech_results.main(["--logdir", str(tmp_path)])
    assert "| lenet5 | 2 | 0.5000 | 0.5200 | -2.0000 |" in text  # compared at epoch 2
    assert "| improved LeNet-5 (tinygrad_edu) val acc >= 71% | 0.7200 | met |" in text
    assert "within 1.5 points (epoch 2) | -2.00 points | not met |" in text
    assert (tmp_path / "caltech_results.md").exists()


def test_augmentation_and_dropout_flags_reach_the_transforms_and_model(tmp_path, monkeypatch):
    from PIL import Image

    from experiments.caltech_common import augmentation_text, load_caltech, model_kwargs
    from experiments.caltech_lenet5 import IMPROVED
    from tinygrad_edu.data import transforms as T

    monkeypatch.setenv("TINYGRAD_EDU_DATA", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (tmp_path / "img" / name).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(rng.integers(0, 256, (20, 20, 3), np.uint8)).save(
                tmp_path / "img" / name / f"{i}.png")
    cfg = IMPROVED.__class__(**(IMPROVED.to_dict() | {"data_dir": str(tmp_path / "img"),
                                                      "image_size": 16}))
    kinds = [type(t) for t in load_caltech(cfg)[0].transform.transforms]
    assert T.ColorJitter in kinds and T.RandomCrop in kinds
    assert "colour jitter 0.1" in augmentation_text(cfg)
    no_jitter = cfg.__class__(**(cfg.to_dict() | {"jitter": 0.0, "crop_padding": 2}))
    train, _ = load_caltech(no_jitter)
    assert T.ColorJitter not in [type(t) for t in train.transform.transforms]
    assert train.transform.transforms[1].padding == 2
    model = models.get_model(cfg.model, **model_kwargs(cfg, 2))
    assert model.classifier.drop1.p == cfg.dropout == 0.3


@needs_caltech
def test_visualize_feeds_a_caltech_run_its_own_statistics(quick_args, tmp_path, capsys):
    """visualize --index on a Caltech run: its validation split, normalised with Caltech's
    per-channel mean/std (run.json), predicted as the API predicts it."""
    import re

    import tinygrad_edu as tg
    from experiments import caltech_lenet5, visualize
    from experiments.caltech_common import CaltechConfig, load_caltech
    from experiments.run_record import load_trained

    run_dir = caltech_lenet5.main(quick_args)["run_dir"]
    capsys.readouterr()
    visualize.main([run_dir, "--index", "0", "1", "2", "--out", str(tmp_path / "out")])
    said = re.findall(r"^#\d+ label (\S+): pred (\S+) \(([\d.]+)\)$", capsys.readouterr().out,
                      re.MULTILINE)
    trained = load_trained(run_dir)
    assert trained.preprocessing.mean == [0.546, 0.529, 0.502] and trained.input_shape[0] == 3
    config = {k: v for k, v in trained.record.config.items()
              if k in CaltechConfig.__dataclass_fields__}
    x, y = load_caltech(CaltechConfig(**config))[1].get_batch(np.arange(3))
    probs = visualize.probabilities(tg.viz.predict(trained.model, x))
    names = trained.class_names
    assert [s[0] for s in said] == [names[int(t)] for t in y]
    assert [s[1] for s in said] == [names[k] for k in probs.argmax(1)]
    np.testing.assert_allclose([float(s[2]) for s in said], probs.max(1), atol=2e-4)
