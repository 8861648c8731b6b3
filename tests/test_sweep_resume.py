"""An interrupted sweep, continued with --resume, is honest: no trial trains an epoch again that
it had checkpointed, logs an epoch or an hparams record twice, or says "running" once it has
ended; the sweep's wall time counts every part; a cluster that will not take us is one
sentence. The setups below are named in configs as "tests.test_sweep_resume:<function>"."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import tinygrad_edu as tg
from experiments import sweep
from experiments.sweeps.setups import EXPERIMENTS
from experiments.sweeps.trial import restore
from tests.test_sweep import local_ray, sweep_config  # noqa: F401 (local_ray: a fixture)

ROOT = Path(__file__).resolve().parent.parent


# ---- setups the sweeps below run (imported by the Ray workers) --------------------------------

def counted(params: dict, epochs: int):
    """The synthetic experiment, writing a line to <marker_dir>/trained for every epoch it
    trains. interrupt=True: in the sweep's first run, once fit has written epoch 2's checkpoint
    and before Tune has it, the trial presses Ctrl-C on the sweep (SIGINT to `driver`), as a
    person can at any moment. fail=True: the first attempt raises in epoch 2."""
    import ray.tune

    params = dict(params)
    driver, marker_dir = params.pop("driver"), Path(params.pop("marker_dir"))
    interrupt, fail = params.pop("interrupt", False), params.pop("fail", False)
    setup = EXPERIMENTS["synthetic"].setup(params, epochs)
    first_run = not (marker_dir / "stopped").exists()

    def validate(logits, targets):  # fit calls it once per epoch
        with open(marker_dir / "trained", "a") as f:
            f.write("epoch\n")
        if fail and first_run and len((marker_dir / "trained").read_text().split()) == 2:
            (marker_dir / "stopped").touch()
            raise RuntimeError("the first attempt fails in epoch 2")
        time.sleep(0.3)  # time for Tune to take the Ctrl-C before the next epoch
        return {}
    setup.metrics_fn = validate
    if interrupt and first_run:
        report = ray.tune.report

        def report_but_stop_at_epoch_2(metrics, checkpoint=None):
            if metrics["epoch"] == 2:
                ray.tune.report = report  # this worker may run the resumed trial
                (marker_dir / "stopped").touch()
                os.kill(driver, signal.SIGINT)
                time.sleep(3)  # Tune stops the sweep meanwhile, without this checkpoint
            report(metrics, checkpoint=checkpoint)
        ray.tune.report = report_but_stop_at_epoch_2
    return setup


# ---- a trial's checkpoint, without Ray's cluster ------------------------------------------------

def fake_checkpoint(path: Path, epoch: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tg.save({"epoch": epoch, "step": 4 * epoch, "model": {}}, str(path))


@pytest.mark.parametrize("tune_epoch, local_epoch, expected", [
    (1, 2, 2),  # stopped between fit's checkpoint and Tune's copy: keep fit's
    (3, 2, 3),  # Tune's is further on (the trial ran on another node since): take it
    (None, 2, 2),  # stopped before Tune had any checkpoint of the trial
    (None, None, None),  # nothing to continue: start from scratch
    (2, None, 2),  # a worker on a node that never ran the trial
])
def test_a_trial_continues_from_the_furthest_checkpoint(tmp_path, tune_epoch, local_epoch,
                                                        expected):
    tune = pytest.importorskip("ray.tune")
    local = tmp_path / "run" / "checkpoint" / "checkpoint.npz"
    local.parent.mkdir(parents=True)  # as run_trial makes it
    if local_epoch is not None:
        fake_checkpoint(local, local_epoch)
    checkpoint = None
    if tune_epoch is not None:
        fake_checkpoint(tmp_path / "tune" / "checkpoint.npz", tune_epoch)
        checkpoint = tune.Checkpoint.from_directory(str(tmp_path / "tune"))
    assert restore(checkpoint, str(local)) == expected
    if expected is not None:
        assert tg.load(str(local))["epoch"] == expected


def test_a_half_written_checkpoint_is_removed_and_the_trial_starts_again(tmp_path):
    local = tmp_path / "checkpoint.npz"
    local.write_bytes(b"half a save")
    assert restore(None, str(local)) is None and not local.exists()


# ---- sweeps on a local Ray -------------------------------------------------------------------

def saved_metrics(row: dict) -> dict:
    return json.loads(Path(row["run_dir"], "metrics.json").read_text())


def test_ctrl_c_then_resume_trains_and_logs_every_epoch_once(local_ray, tmp_path):  # noqa: F811
    cfg = sweep_config(experiment="tests.test_sweep_resume:counted", epochs=4,
                       space={"driver": os.getpid(), "marker_dir": str(tmp_path),
                              "interrupt": True, "samples": 64})
    out = str(tmp_path / "s")
    first = sweep.run_sweep(cfg, out)
    assert [r["status"] for r in first["rows"]] == ["not finished"]
    assert saved_metrics(first["rows"][0])["summary"]["status"] == "interrupted"
    (row,) = sweep.run_sweep(cfg, out, sweep.SweepOptions(resume=True))["rows"]
    assert (row["status"], row["epochs"], row["resumed_from_epoch"]) == ("finished", 4, 2)
    assert (tmp_path / "trained").read_text().split() == ["epoch"] * 4  # none trained twice
    saved = saved_metrics(row)
    assert [step for step, _ in saved["scalars"]["val/loss"]] == [1, 2, 3, 4]
    assert saved["scalars"]["hparam/epochs"] == [[0, 4]]  # one hparams record
    assert saved["summary"]["status"] == "finished"


def test_a_failed_trial_retried_by_resume_gets_one_hparams_record_of_its_end(local_ray,  # noqa: F811
                                                                           tmp_path):
    cfg = sweep_config(experiment="tests.test_sweep_resume:counted", epochs=3, max_failures=0,
                       space={"driver": os.getpid(), "marker_dir": str(tmp_path),
                              "fail": True, "samples": 64})
    out = str(tmp_path / "s")
    (failed,) = sweep.run_sweep(cfg, out)["rows"]
    assert failed["status"] == "failed" and saved_metrics(failed)["summary"]["status"] == "failed"
    (row,) = sweep.run_sweep(cfg, out, sweep.SweepOptions(resume=True))["rows"]
    assert (row["status"], row["epochs"]) == ("finished", 3)
    saved = saved_metrics(row)
    assert saved["scalars"]["hparam/epochs"] == [[0, 3]]
    assert [step for step, _ in saved["scalars"]["val/loss"]] == [1, 2, 3]


def test_trials_say_they_ended_before_the_sweep_does(local_ray, tmp_path, monkeypatch):  # noqa: F811
    """Without the driver's closing write (a sweep killed before its results), each trial's own
    metrics.json says finished or stopped_early: ASHA stops a trial inside tune.report."""
    monkeypatch.setattr(sweep, "write_hparams", lambda rows, cfg: None)
    cfg = sweep_config(experiment="synthetic", epochs=4, scheduler="asha", grace_period=1,
                       reduction_factor=2,
                       space={"lr": {"grid": [0.1, 0.05, 0.03, 2.0]}, "samples": 256})
    rows = sweep.run_sweep(cfg, str(tmp_path / "s"), sweep.SweepOptions(max_concurrent=2))["rows"]
    assert {r["status"] for r in rows} == {"finished", "stopped_early"}
    for row in rows:
        assert saved_metrics(row)["summary"]["status"] == row["status"], row["trial"]


# ---- wall time and connection, without running trials ------------------------------------------

def test_every_part_of_a_resumed_sweep_counts_in_its_wall_time(tmp_path, monkeypatch):
    """A part that ends in an exception (a second Ctrl-C skips Tune's orderly stop) counts
    too."""
    out = tmp_path / "s"

    def tune_for(seconds, then=None):
        def fake_tune(cfg, spec, out, options, scheduler):
            os.makedirs(os.path.join(out, "tune"), exist_ok=True)
            time.sleep(seconds)
            if then is not None:
                raise then
            return []
        return fake_tune
    monkeypatch.setattr(sweep, "_connect", lambda address: False)
    cfg = sweep_config(experiment="synthetic", epochs=1, space={"lr": 0.1})
    monkeypatch.setattr(sweep, "_tune", tune_for(0.3, KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(cfg, str(out))
    assert sweep._earlier_wall(str(out)) >= 0.3
    monkeypatch.setattr(sweep, "_tune", tune_for(0.2))
    result = sweep.run_sweep(cfg, str(out), sweep.SweepOptions(resume=True))
    assert 0.5 <= result["wall_seconds"] == sweep._earlier_wall(str(out)) < 5
    assert f"wall time {result['wall_seconds']:.1f} s" in Path(result["paths"]["md"]).read_text()


@pytest.fixture
def token_cluster():
    """A one-node Ray cluster that takes only drivers with its authentication token; its
    address. Stopped by its process group (the processes this fixture started)."""
    pytest.importorskip("ray")
    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # Ray's socket paths must stay short
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = os.environ | {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "0123456789abcdef" * 2,
                        "HOME": temp}
    head = subprocess.Popen(["ray", "start", "--head", f"--port={port}", "--num-cpus=1",
                             "--include-dashboard=false", f"--temp-dir={temp}", "--block"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.time() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.time() < deadline and head.poll() is None, "the head never started"
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=5)
        except subprocess.TimeoutExpired:  # `ray start --block` waits for minutes
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        shutil.rmtree(temp, ignore_errors=True)


def test_a_cluster_that_wants_a_token_is_one_sentence(token_cluster, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env |= {"HOME": str(tmp_path), "RAY_gcs_server_port_wait_time_s": "2"}  # Ray retries less
    done = subprocess.run([sys.executable, "-m", "experiments.sweep", "synthetic", "--address",
                           token_cluster, "--out", str(tmp_path / "s")], cwd=ROOT, env=env,
                          capture_output=True, check=False, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert f"the Ray cluster at --address {token_cluster} wants its authentication token" in \
        done.stderr
    assert not (tmp_path / "s").exists()


def test_the_metrics_lock_excludes_a_second_writer_until_released(tmp_path):
    """The lock the sweep's driver and its trials take around rewriting a trial's metrics.json
    (experiments.run_record.metrics_lock): a second holder is refused while it is held."""
    fcntl = pytest.importorskip("fcntl")
    from experiments.run_record import metrics_lock
    other = os.open(tmp_path, os.O_RDONLY)
    try:
        with metrics_lock(str(tmp_path)), pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released: taken at once
    finally:
        os.close(other)
