"""experiments.visualize on real run directories: it rebuilds whatever architecture the run
trained and feeds images as the run did (the line networks take [0, 1] input, not MNIST's
mean/std), so its predictions are the API's; multi-head networks are explained head by head."""
import re

import numpy as np
import pytest
from PIL import Image

import models
import tinygrad_edu as tg
from experiments import (
    lines_common,
    lines_multihead,
    lines_specified,
    lines_variations,
    visualize,
)
from experiments.run_record import load_trained, read_record
from tinygrad_edu.data import lines as L

QUICK = ["--epochs", "1", "--no-progress"]
CLASSES = [L.class_index(15, 3, "red", 90), L.class_index(15, 3, "blue", 0),
           L.class_index(7, 1, "red", 45), L.class_index(15, 1, "blue", 135),
           L.class_index(7, 3, "red", 165), L.class_index(15, 3, "blue", 60)]


@pytest.fixture(scope="module")
def lines_run(tmp_path_factory) -> str:
    """A line-network run trained long enough to be right about most lines."""
    root = tmp_path_factory.mktemp("lines")
    out = lines_specified.main(["--per-class", "60", "--epochs", "2", "--no-progress",
                                "--logdir", str(root / "runs"), "--data-dir", str(root / "data")])
    return out["run_dir"]


@pytest.fixture
def six_pngs(tmp_path) -> tuple[list[str], np.ndarray]:
    """Six generated line images as PNG files, and the same pixels as the API's input."""
    attributes = L.attribute_labels(np.array(CLASSES))
    images = L.render(attributes, L.random_centres(attributes, np.random.default_rng(1)))
    paths = []
    for n, image in enumerate(images):
        paths.append(str(tmp_path / f"line{n}.png"))
        Image.fromarray(image).save(paths[-1])
    return paths, images.transpose(0, 3, 1, 2).astype(np.float32) / 255  # (6, 3, 28, 28)


def printed_predictions(out: str) -> list[tuple[str, str, float]]:
    """(image caption, predicted name, probability) of each line visualize printed."""
    return [(m[1], m[2], float(m[3]))
            for m in re.finditer(r"^(.+?): pred (\S+) \(([\d.]+)\)$", out, re.MULTILINE)]


def test_line_run_records_itself(lines_run):
    record = read_record(lines_run)
    assert record.model_name == "spec_cnn" and record.dataset == "lines"
    assert record.preprocessing.mean == [0.0] and record.preprocessing.std == [1.0]
    assert record.preprocessing.channels == 3 and len(record.class_names) == 96
    assert record.config["per_class"] == 60 and record.code_version


def test_six_generated_images_are_predicted_as_the_api_does(lines_run, six_pngs, tmp_path,
                                                            capsys):
    paths, x = six_pngs
    model = models.get_model("spec_cnn", **read_record(lines_run).model_config)
    model.load_state_dict(tg.load(f"{lines_run}/checkpoint.npz")["model"])
    model.eval()
    with tg.no_grad():
        probs = model(tg.Tensor(x)).softmax(1).numpy()  # (6, 96), [0, 1] input as trained

    figures = visualize.main([lines_run, *paths, "--out", str(tmp_path / "out")])
    said = printed_predictions(capsys.readouterr().out)
    assert [s[0] for s in said] == [f"line{n}.png" for n in range(6)]
    assert [s[1] for s in said] == [L.CLASS_NAMES[c] for c in probs.argmax(1)]
    np.testing.assert_allclose([s[2] for s in said], probs.max(1), atol=2e-4)
    assert np.mean(probs.argmax(1) == CLASSES) >= 0.5  # a trained network, not noise
    (figure,) = figures.values()
    assert figure.shape[0] > 6 * 28 * visualize.SCALE  # one row per image


def test_mnist_scaling_would_have_explained_another_prediction(lines_run, six_pngs):
    """The control: the same images scaled with MNIST's mean/std (what visualize used to do)
    do not give the network's answers, so the test above can fail."""
    trained = load_trained(lines_run)
    _, x = six_pngs
    right = visualize.probabilities(tg.viz.predict(trained.model, x))
    wrong = visualize.probabilities(tg.viz.predict(trained.model, (x - 0.1307) / 0.3081))
    assert np.abs(right - wrong).max() > 0.1


def test_index_reads_the_runs_own_test_split(lines_run, tmp_path, capsys):
    visualize.main([lines_run, "--index", *map(str, range(6)), "--method", "saliency",
                    "--out", str(tmp_path)])
    said = printed_predictions(capsys.readouterr().out)
    assert [s[0].split()[0] for s in said] == [f"#{i}" for i in range(6)]
    data = lines_common.load_data(lines_common.LinesConfig(
        **{k: v for k, v in read_record(lines_run).config.items()
           if k in lines_common.LinesConfig.__dataclass_fields__}))
    x, _ = data.test.get_batch(np.arange(6))
    logits = tg.viz.predict(load_trained(lines_run).model, x)
    assert [s[1] for s in said] == [L.CLASS_NAMES[c] for c in logits.argmax(1)]


def test_a_variation_network_is_rebuilt_from_its_run(tmp_path, capsys):
    out = lines_variations.main(["--variants", "deeper", "--per-class", "5", *QUICK,
                                 "--logdir", str(tmp_path / "runs"),
                                 "--data-dir", str(tmp_path / "data")])
    run_dir = out["results"]["deeper"]["run_dir"]
    trained = load_trained(run_dir)
    assert trained.model.config["channels"] == (32, 64) and trained.model.config["padding"] == 2
    visualize.main([run_dir, "--index", "0", "--out", str(tmp_path / "out")])
    assert len(printed_predictions(capsys.readouterr().out)) == 1


def test_every_head_of_the_multihead_network_is_explained(tmp_path, capsys):
    out = lines_multihead.main(["--per-class", "5", *QUICK, "--logdir", str(tmp_path / "runs"),
                                "--data-dir", str(tmp_path / "data")])
    run_dir = out["run_dir"]
    figures = visualize.main([run_dir, "--index", "0", "1", "--out", str(tmp_path / "out")])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("#")]
    assert len(lines) == 2 and all(all(f"{h} " in line for h in L.ATTRIBUTES) for line in lines)
    trained = load_trained(run_dir)
    x, _ = lines_common.load_data(lines_multihead.MultiHeadConfig(
        per_class=5, data_dir=str(tmp_path / "data")), "attributes").test.get_batch(
        np.arange(2))
    length = 1 / (1 + np.exp(-tg.viz.predict(trained.model, x, output="length")[:, 0]))
    shown = [float(re.search(r"length \d+ \(([\d.]+)\)", line)[1]) for line in lines]
    np.testing.assert_allclose(shown, np.maximum(length, 1 - length), atol=2e-4)
    (figure,) = figures.values()
    assert figure.shape[1] > 5 * 28 * visualize.SCALE  # the input and one map per head

    visualize.main([run_dir, "--index", "0", "--output", "angle", "--out", str(tmp_path)])
    assert "angle " in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        visualize.main([run_dir, "--index", "0", "--output", "size", "--out", str(tmp_path)])
    assert e.value.code == 2 and "has the heads length, width" in capsys.readouterr().err


def test_filters_start_from_a_blank_image(lines_run, tmp_path, capsys):
    figures = visualize.main([lines_run, "--method", "filters", "--start", "blank",
                              "--steps", "3", "--out", str(tmp_path)])
    assert any("blank" in name for name in figures)
    assert "from a blank start" in capsys.readouterr().out


def test_nan_weights_are_one_sentence_naming_the_tensor(lines_run, tmp_path, capsys):
    payload = tg.load(f"{lines_run}/checkpoint.npz")
    payload["model"]["classifier.fc.bias"].data[3] = np.nan
    tg.save(payload, tmp_path / "checkpoint.npz")
    with pytest.raises(SystemExit) as e:
        visualize.main([str(tmp_path / "checkpoint.npz"), "--index", "0", "--out",
                        str(tmp_path)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "'classifier.fc.bias'" in err


def test_compare_scales_each_run_its_own_way_and_refuses_other_inputs(lines_run, tmp_path,
                                                                      capsys):
    figures = visualize.main(["--index", "0", "1", "--compare", lines_run, lines_run,
                              "--out", str(tmp_path)])
    assert list(figures) == ["compare_gradcam"]
    mnist = tmp_path / "cnn3.npz"
    tg.save({"model": models.get_model("cnn3").state_dict(), "model_name": "cnn3"}, mnist)
    with pytest.raises(SystemExit) as e:
        visualize.main(["--index", "0", "--compare", lines_run, str(mnist), "--out",
                        str(tmp_path)])
    assert e.value.code == 2 and "take different inputs" in capsys.readouterr().err
