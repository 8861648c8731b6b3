"""Sweeps on Ray Tune (experiments.sweep): configs, the results table, ASHA, retries, and a node
dying mid-sweep. The sweeps train an MLP on Gaussian blobs for a few epochs on a local Ray with
2 CPUs; the setups below are named in configs as "tests.test_sweep:<function>"."""
import csv
import glob
import json
import os
import socket
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from experiments import sweep
from experiments.common import UsageError
from experiments.sweeps.config import check_config, load_config, trial_params
from experiments.sweeps.setups import EXPERIMENTS

# ---- setups the sweeps below run (imported by the Ray workers) --------------------------------

def checked_threads(params: dict, epochs: int):
    """The synthetic experiment, once the trial's BLAS and Numba threads are checked to be its
    one CPU."""
    import numba
    import threadpoolctl

    import tinygrad_edu as tg

    blas = {p["internal_api"]: p["num_threads"] for p in threadpoolctl.threadpool_info()}
    if numba.get_num_threads() != 1 or tg.get_num_threads() != 1 or any(
            n != 1 for n in blas.values()):
        raise RuntimeError(f"threads not limited: numba {numba.get_num_threads()}, tinygrad_edu "
                           f"{tg.get_num_threads()}, BLAS {blas}")
    return EXPERIMENTS["synthetic"].setup(params, epochs)


def flaky(params: dict, epochs: int):
    """The synthetic experiment. fail='once': the first attempt raises during epoch 2 (after
    epoch 1's checkpoint); fail='always': every attempt raises before training."""
    params = dict(params)
    fail, marker = params.pop("fail"), Path(params.pop("marker_dir")) / "failed_once"
    if fail == "always":
        raise RuntimeError("this trial always fails")
    setup = EXPERIMENTS["synthetic"].setup(params, epochs)
    if fail == "once" and not marker.exists():
        calls = []

        def fail_in_epoch_2(logits, targets):  # fit calls it once per epoch, at validation
            calls.append(1)
            if len(calls) == 2:
                marker.touch()
                raise RuntimeError("the first attempt fails in epoch 2")
            return {}
        setup.metrics_fn = fail_in_epoch_2
    return setup


def slow(params: dict, epochs: int):
    """The synthetic experiment with `sleep` seconds more per epoch, to kill a node mid-run."""
    params = dict(params)
    seconds = params.pop("sleep")
    setup = EXPERIMENTS["synthetic"].setup(params, epochs)
    setup.metrics_fn = lambda logits, targets: time.sleep(seconds) or {}
    return setup


def sweep_config(**raw):
    return check_config({"name": "test"} | raw, "test config")


# ---- configs (no Ray needed) -----------------------------------------------------------------

def test_yaml_config_samplers_overrides_and_variants(tmp_path):
    pytest.importorskip("yaml")
    path = tmp_path / "s.yaml"
    path.write_text("experiment: synthetic\nepochs: 3\nspace:\n  lr: {loguniform: [1e-4, 1e-1]}\n"
                    "  hidden: {grid: [8, 16]}\n  samples: 64\n"
                    "variants:\n  plain: {}\n  wide: {hidden: 128}\n")
    cfg = load_config(str(path), ["epochs=5", "space.samples=2e2", "mode=max"])
    assert (cfg.name, cfg.epochs, cfg.mode) == ("s", 5, "max")
    assert cfg.space["lr"] == {"loguniform": [1e-4, 0.1]}  # 1e-4 read as a number, not a string
    assert cfg.space["samples"] == 200.0
    assert cfg.searched() == ["variant", "lr", "hidden"]
    assert trial_params({"variant": "wide", "hidden": 8, "lr": 0.1}, cfg.variants) == {
        "hidden": 128, "lr": 0.1}


@pytest.mark.parametrize("raw, message", [
    ({"experiment": "synthetic"}, "needs 'epochs'"),
    ({"experiment": "synthetic", "epochs": 2, "budget": 3}, "unknown key"),
    ({"experiment": "synthetic", "epochs": 0}, "epochs must be a positive integer"),
    ({"experiment": "synthetic", "epochs": 2, "space": {"lr": {"loguniform": [0, 1]}}},
     "log-uniform range must be positive"),
    ({"experiment": "synthetic", "epochs": 2, "space": {"lr": {"normal": [0, 1]}}},
     "one of grid, choice, uniform, loguniform"),
    ({"experiment": "synthetic", "epochs": 2, "space": {"epochs": 3}}, "reserved"),
    ({"experiment": "synthetic", "epochs": 2, "mode": "best"}, "mode must be min or max"),
])
def test_bad_configs_say_what_is_wrong(raw, message):
    with pytest.raises(UsageError, match=message):
        check_config(raw, "s.yaml")


def test_every_shipped_config_reads_and_names_parameters_its_experiment_has():
    pytest.importorskip("yaml")
    shipped = sorted(Path(sweep.__file__).parent.joinpath("sweeps").glob("*.yaml"))
    assert [p.stem for p in shipped] == ["caltech_lenet5", "lines_tuning", "lines_variations",
                                         "synthetic"]
    for path in shipped:
        cfg = load_config(path.stem)
        EXPERIMENTS[cfg.experiment].check_names(sweep.parameter_names(cfg))


def test_the_variation_configs_match_their_experiments():
    """Each variant of the lines_variations sweep is the experiment's own variant: the same
    config (the sweep's lists of channels read as the flags' "32,64")."""
    pytest.importorskip("yaml")
    from experiments.caltech_lenet5 import IMPROVED
    from experiments.lines_common import architecture
    from experiments.lines_variations import VARIANTS, VariationsConfig

    def normalised(cfg):
        return cfg.to_dict() | {"channels": architecture(cfg)["channels"]}
    lines = load_config("lines_variations")
    assert list(lines.variants) == list(VARIANTS)
    defaults = VariationsConfig()
    for name, variant in VARIANTS.items():
        assert normalised(replace(defaults, **lines.variants[name])) == normalised(
            replace(defaults, **variant.overrides)), name
    assert lines.epochs == defaults.epochs
    assert {k: lines.space[k] for k in ("per_class", "lr", "batch_size", "optimizer")} == {
        "per_class": defaults.per_class, "lr": defaults.lr, "batch_size": defaults.batch_size,
        "optimizer": defaults.optimizer}
    caltech = load_config("caltech_lenet5")
    improved = caltech.variants["all_improvements"]
    assert {k: getattr(IMPROVED, k) for k in improved} == improved


def test_a_python_config_may_name_a_setup_function(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text("from experiments.sweeps.setups import EXPERIMENTS\n\n"
                    "def setup(params, epochs):\n"
                    "    return EXPERIMENTS['synthetic'].setup(params, epochs)\n\n"
                    "SWEEP = {'experiment': setup, 'epochs': 2, 'space': {'lr': {'choice': "
                    "[0.1, 0.2]}}}\n")
    cfg = load_config(str(path))
    assert cfg.name == "mine" and cfg.experiment.__name__ == "setup"
    assert cfg.searched() == ["lr"]


def test_unknown_parameters_are_refused_before_anything_runs(tmp_path):
    cfg = sweep_config(experiment="synthetic", epochs=1, space={"learning_rate": 0.1})
    with pytest.raises(UsageError, match="unknown parameter.*learning_rate.*takes samples"):
        sweep.run_sweep(cfg, str(tmp_path / "out"))


def test_without_ray_the_command_says_how_to_install_it_and_exits_2(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(SystemExit) as exit_info:
        sweep.main(["synthetic"])
    assert exit_info.value.code == 2
    assert 'pip install -e ".[sweep]"' in capsys.readouterr().err


def test_a_cluster_that_refuses_the_connection_is_one_sentence(tmp_path, capsys):
    pytest.importorskip("ray")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(SystemExit) as exit_info:
        sweep.main(["synthetic", "--address", f"127.0.0.1:{port}", "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and not os.listdir(tmp_path)
    assert f"cannot reach the Ray cluster at --address 127.0.0.1:{port}" in err


def test_a_resumed_sweep_adds_the_earlier_wall_time(tmp_path):
    cfg = sweep_config(experiment="synthetic", epochs=1, space={"lr": 0.1})
    sweep._save_settings(str(tmp_path), cfg, sweep.SweepOptions(), None, 12.5)
    resumed = sweep.SweepOptions(resume=True)
    sweep._save_settings(str(tmp_path), cfg, resumed, None)  # the restart keeps it
    assert sweep._earlier_wall(str(tmp_path)) == 12.5


# ---- sweeps on a local Ray -------------------------------------------------------------------

@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.tune")
    ray.init(address="local", num_cpus=2, include_dashboard=False, configure_logging=False)
    yield ray
    ray.shutdown()


def test_a_four_trial_sweep_writes_the_table_and_the_hparams(local_ray, tmp_path):
    cfg = sweep_config(experiment="tests.test_sweep:checked_threads", epochs=2,
                       space={"lr": {"grid": [0.003, 0.01, 0.03, 0.1]}, "samples": 128})
    result = sweep.run_sweep(cfg, str(tmp_path / "s"), sweep.SweepOptions(max_concurrent=1))
    rows = result["rows"]
    assert [r["status"] for r in rows] == ["finished"] * 4, [r["error"] for r in rows]
    pids = {json.loads(line)["pid"] for path in glob.glob(str(tmp_path / "s/tune/*/result.json"))
            for line in Path(path).read_text().splitlines()}
    assert len(pids) == 1  # one trial at a time (2 CPUs free): one worker, reused
    losses = [r["metrics"]["val_loss"] for r in rows]
    assert losses == sorted(losses) and {r["epochs"] for r in rows} == {2}
    with open(result["paths"]["csv"]) as f:
        table = list(csv.DictReader(f))
    assert [float(r["val_loss"]) for r in table] == losses
    assert [r["rank"] for r in table] == ["1", "2", "3", "4"] and "wall s" in table[0]
    markdown = Path(result["paths"]["md"]).read_text()
    assert "| rank | trial | lr | val_loss | val_acc |" in markdown
    assert "<table>" in Path(result["paths"]["html"]).read_text()
    for row in rows:  # an ordinary run directory, plus the hparams the sweep added
        assert glob.glob(os.path.join(row["run_dir"], "events.out.tfevents.*"))
        saved = json.loads(Path(row["run_dir"], "metrics.json").read_text())
        assert [step for step, _ in saved["scalars"]["val/loss"]] == [1, 2]
        assert saved["hparams"] == {"lr": row["params"]["lr"]}
        assert saved["summary"]["sweep"]["status"] == "finished"
        assert saved["summary"]["status"] == "finished"  # not "running"
    sweep_json = json.loads(Path(tmp_path, "s", "sweep.json").read_text())
    assert sweep_json["wall_seconds"] == pytest.approx(result["wall_seconds"])


def test_asha_stops_a_diverging_learning_rate_early(local_ray, tmp_path):
    # SGD with lr 2 makes the loss grow each epoch (22, 6e4, 4e5: finite, so ASHA's to stop);
    # with lr 1e4 it is NaN within epoch 1: that trial ends as diverged, not retried
    cfg = sweep_config(experiment="synthetic", epochs=4, scheduler="asha", grace_period=1,
                       reduction_factor=2,
                       space={"lr": {"grid": [0.1, 0.05, 0.03, 2.0, 1e4]}, "samples": 256})
    rows = sweep.run_sweep(cfg, str(tmp_path / "s"), sweep.SweepOptions(max_concurrent=2))["rows"]
    bad = next(r for r in rows if r["params"]["lr"] == 2.0)
    assert bad["status"] == "stopped_early" and bad["epochs"] < 4
    saved = json.loads(Path(bad["run_dir"], "metrics.json").read_text())["summary"]
    assert saved["status"] == "stopped_early"
    assert rows[0]["status"] == "finished" and rows[-2] is bad
    nan = rows[-1]
    assert (nan["params"]["lr"], nan["status"], nan["epochs"], nan["retries"]) == (
        1e4, "diverged", 0, 0)


def test_a_trial_that_raises_is_retried_and_reported_while_the_others_finish(local_ray,
                                                                            tmp_path):
    cfg = sweep_config(experiment="tests.test_sweep:flaky", epochs=3, max_failures=1,
                       space={"fail": {"grid": ["never", "once", "always"]},
                              "marker_dir": str(tmp_path), "samples": 128})
    result = sweep.run_sweep(cfg, str(tmp_path / "s"), sweep.SweepOptions(max_concurrent=2))
    by_fail = {r["params"]["fail"]: r for r in result["rows"]}
    assert by_fail["never"]["status"] == "finished" and by_fail["never"]["retries"] == 0
    once = by_fail["once"]  # retried from its epoch-1 checkpoint
    assert (once["status"], once["epochs"], once["retries"]) == ("finished", 3, 1)
    assert once["resumed_from_epoch"] == 1
    always = by_fail["always"]
    assert always["status"] == "failed" and always["retries"] >= 1
    assert always["error"] == "RuntimeError: this trial always fails"
    markdown = Path(result["paths"]["md"]).read_text()
    assert "## Failed trials" in markdown and "this trial always fails" in markdown


# ---- a node dies mid-sweep -------------------------------------------------------------------

def test_killing_a_node_mid_sweep_resumes_its_trial_from_its_checkpoint(tmp_path):
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    ray.shutdown()  # the other tests' local Ray: this test brings a two-node cluster
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    worker = cluster.add_node(num_cpus=1)  # one trial on each node
    ray.init(address=cluster.address)
    try:
        cfg = sweep_config(experiment="tests.test_sweep:slow", epochs=6, max_failures=3,
                           space={"seed": {"grid": [0, 1]}, "sleep": 0.4, "samples": 64})
        out, result = tmp_path / "s", {}
        thread = threading.Thread(target=lambda: result.update(sweep.run_sweep(cfg, str(out))))
        thread.start()
        deadline = time.time() + 180
        while len({Path(p).parent for p in glob.glob(str(out / "tune/trial_*/checkpoint_*"))}) < 2:
            assert time.time() < deadline and thread.is_alive(), "the trials never checkpointed"
            time.sleep(0.1)
        cluster.remove_node(worker, allow_graceful=False)
        thread.join(timeout=300)
        assert not thread.is_alive()
    finally:
        ray.shutdown()
        cluster.shutdown()
    rows = result["rows"]
    assert [(r["status"], r["epochs"]) for r in rows] == [("finished", 6)] * 2
    killed = [r for r in rows if r["retries"]]
    assert len(killed) == 1 and killed[0]["resumed_from_epoch"] >= 1
    saved = json.loads(Path(killed[0]["run_dir"], "metrics.json").read_text())
    epochs = [step for step, _ in saved["scalars"]["val/loss"]]
    assert epochs.count(1) == 1 and epochs[-1] == 6  # no restart from epoch 0


def test_lines_trial_with_a_cosine_schedule_anneals_per_batch_to_zero(tmp_path):
    """The `lines` experiment's schedule is the line experiments' cosine, stepped every batch."""
    from experiments.sweeps.setups import EXPERIMENTS
    setup = EXPERIMENTS["lines"].setup({"per_class": 2, "data_dir": str(tmp_path),
                                        "schedule": "cosine", "batch_size": 8}, epochs=2)
    steps = 2 * len(setup.train_loader)
    assert setup.scheduler.step_per_batch and setup.scheduler.T_max == steps
    for _ in range(steps):
        setup.scheduler.step()
    assert setup.optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    assert EXPERIMENTS["lines"].setup({"per_class": 2, "data_dir": str(tmp_path)},
                                      epochs=1).scheduler is None


def test_lines_variations_is_reproducible_and_matches_its_sweep_trial(tmp_path):
    """Seeded before it builds each variant: the same command gives the same numbers, and the
    sweep's `lines` trial of the same variant trains to the same weights."""
    import tinygrad_edu as tg
    from experiments import lines_variations
    from experiments.sweeps.setups import EXPERIMENTS

    argv = ["--variants", "specified", "--per-class", "5", "--epochs", "1", "--no-progress",
            "--data-dir", str(tmp_path / "data")]
    runs = [lines_variations.main(argv + ["--logdir", str(tmp_path / name)])["results"]
            ["specified"] for name in ("a", "b")]
    assert runs[0]["test_accuracy"] == runs[1]["test_accuracy"]
    setup = EXPERIMENTS["lines"].setup({"per_class": 5, "data_dir": str(tmp_path / "data")},
                                       epochs=1)
    tg.train.fit(setup.model, setup.optimizer, setup.train_loader, setup.val_loader, epochs=1,
                 progress=False)
    saved = tg.load(os.path.join(runs[0]["run_dir"], "checkpoint.npz"))["model"]
    for name, value in setup.model.state_dict().items():
        np.testing.assert_array_equal(value.data, saved[name].data, err_msg=name)
