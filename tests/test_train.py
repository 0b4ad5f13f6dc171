"""The trainer on real photos: loss falls, a killed run resumes to the same weights, 2-process DDP on CPU, bad input.

Every run is a tiny conv VQGAN on 64x64 crops of scikit-image's bundled photos (no download).
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import zoo
from zoo import ConfigError
from conftest import torchrun_env
from zoo.train import load_recipe, train
from zoo.train.checkpoint import latest_checkpoint, list_checkpoints

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "recipes" / "vqgan" / "tiny.yaml"


def weights(run: Path) -> dict:
    return load_file(str(run / "model" / "model.safetensors"))


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def read_log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_tiny_recipe_loss_falls_on_real_photos(tmp_path):
    result = train(TINY, ["train.max_steps=30", "train.save_every=30", "train.threads=1"], output=tmp_path / "run",
                   quiet=True)
    log = read_log(tmp_path / "run")
    assert [r["step"] for r in log] == [10, 20, 30]
    assert log[-1]["loss/l2"] < 0.6 * log[0]["loss/l2"], log
    assert log[-1]["psnr"] > log[0]["psnr"] + 2
    assert 0 < log[-1]["codebook/used_fraction"] <= 1
    # the exported folder is an ordinary zoo model
    tok = zoo.load(result.model_dir)
    from conftest import photo_batch

    recon = tok.reconstruct(photo_batch(64))
    assert recon.shape == (2, 3, 64, 64)


# A run that exercises every piece of state: GAN (PatchGAN + LeCam + adaptive weight, BatchNorm), EMA,
# gradient accumulation, dead-code restarts, a cosine schedule with warmup.
FULL_STATE = ["train.max_steps=8", "train.save_every=4", "train.log_every=2", "train.grad_accum=2",
              "train.restart_every=3", "train.threads=1", "data.batch_size=2", "loss.l1=0.5",
              "loss.gan.weight=0.1", "loss.gan.start=2", "loss.gan.channels=8", "loss.gan.layers=2",
              "loss.gan.adaptive=true", "loss.gan.lecam=0.001", "schedule.name=cosine", "schedule.warmup_steps=3",
              "schedule.end_lr=1e-4", "train.ema_decay=0.9"]


def test_killed_run_resumes_to_the_same_weights(tmp_path):
    train(TINY, FULL_STATE, output=tmp_path / "ref", quiet=True)
    # "kill" at step 6: the checkpoint of step 4 is the newest; steps 5-6 are lost
    stopped = train(TINY, FULL_STATE, output=tmp_path / "run", quiet=True, callback=lambda step, _: step == 6)
    assert stopped.model_dir is None and [p.name for p in list_checkpoints(tmp_path / "run")] == ["step_00000004"]
    with pytest.raises(ConfigError, match="--resume"):
        train(TINY, FULL_STATE, output=tmp_path / "run", quiet=True)
    resumed = train(TINY, FULL_STATE, output=tmp_path / "run", resume=True, quiet=True)
    assert resumed.step == 8
    assert max_diff(weights(tmp_path / "ref"), weights(tmp_path / "run")) <= 1e-6
    ckpt_ref, ckpt_run = latest_checkpoint(tmp_path / "ref"), latest_checkpoint(tmp_path / "run")
    for name in ("model.safetensors", "discriminator.safetensors", "ema.safetensors", "state.safetensors"):
        assert max_diff(load_file(str(ckpt_ref / name)), load_file(str(ckpt_run / name))) <= 1e-6, name
    # our numbering continued: steps 4 and 8 are there, and keep_last (2) pruned nothing else
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == ["step_00000004", "step_00000008"]
    ref_log = {r["step"]: r for r in read_log(tmp_path / "ref")}
    run_log = {r["step"]: r for r in read_log(tmp_path / "run")}
    # step 6 was logged before the "kill" and again after the resume: log.jsonl holds it once
    assert [r["step"] for r in read_log(tmp_path / "run")] == [2, 4, 6, 8]
    assert abs(ref_log[8]["loss/d"] - run_log[8]["loss/d"]) < 1e-6


def test_sigkilled_cli_run_resumes_to_the_same_weights(tmp_path):
    """A real kill (SIGKILL, mid-step or mid-save) of `zoo train`, then `zoo train --resume`."""
    import signal
    import time

    args = ["train.max_steps=12", "train.save_every=2", "train.threads=1", "data.batch_size=2", "train.log_every=2"]
    cli = [sys.executable, "-m", "zoo.cli", "train", str(TINY), "-o", str(tmp_path / "run"), "-q"]
    for a in args:
        cli += ["--set", a]
    proc = subprocess.Popen(cli, env=torchrun_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path)
    deadline = time.time() + 120
    while latest_checkpoint(tmp_path / "run") is None and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = latest_checkpoint(tmp_path / "run")
    assert killed_at is not None and not (tmp_path / "run" / "model").exists()
    done = subprocess.run(cli + ["--resume"], env=torchrun_env(), capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    train(TINY, args, output=tmp_path / "ref", quiet=True)
    assert max_diff(weights(tmp_path / "ref"), weights(tmp_path / "run")) <= 1e-6


def test_half_written_checkpoint_is_ignored_on_resume(tmp_path):
    args = ["train.max_steps=4", "train.save_every=2", "train.threads=1", "data.batch_size=2"]
    train(TINY, args, output=tmp_path / "ref", quiet=True)
    train(TINY, args, output=tmp_path / "run", quiet=True, callback=lambda step, _: step == 3)
    # a kill during the save of step 4 leaves a temporary folder without its trainer.json
    partial = tmp_path / "run" / "checkpoints" / ".tmp-step_00000004"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"\0" * 10)
    assert latest_checkpoint(tmp_path / "run").name == "step_00000002"
    train(TINY, args, output=tmp_path / "run", resume=True, quiet=True)
    assert max_diff(weights(tmp_path / "ref"), weights(tmp_path / "run")) <= 1e-6
    assert not partial.exists()


def test_ddp_two_processes_on_cpu_and_resume_in_one(tmp_path):
    """2 processes x batch 2 (gloo) take the same steps as 1 process x batch 4: same samples, averaged gradients."""
    args = ["train.max_steps=4", "train.save_every=4", "train.threads=1", "train.restart_dead_codes=false"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "zoo.cli", "train", str(TINY), "-o", str(tmp_path / "ddp"), "-q", "--set", "data.batch_size=2"]
    for a in args:
        cmd += ["--set", a]
    proc = subprocess.run(cmd, env=torchrun_env(), capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = json.loads((latest_checkpoint(tmp_path / "ddp") / "trainer.json").read_text())
    assert state["world_size"] == 2 and state["data"]["position"] == 16
    train(TINY, args + ["data.batch_size=4"], output=tmp_path / "one", quiet=True)
    # The same steps: all but a handful of the 0.8M weights agree within 1e-4 (gloo's gradient average sums in
    # another order, and Adam turns that noise in near-zero gradients into steps of up to lr = 2e-3); other
    # samples or a missing average would move most weights by about lr.
    ddp, one = weights(tmp_path / "ddp"), weights(tmp_path / "one")
    gaps = torch.cat([(ddp[k].double() - one[k].double()).abs().flatten() for k in ddp])
    assert int((gaps > 1e-4).sum()) < 100 and float(gaps.mean()) < 1e-6 and float(gaps.max()) < 2e-3, (
        int((gaps > 1e-4).sum()), float(gaps.mean()), float(gaps.max()))
    # the 2-process checkpoint resumes in 1 process (with the per-process batch doubled: same global batch)
    resumed = train(TINY, args + ["data.batch_size=4", "train.max_steps=6"], output=tmp_path / "ddp", resume=True,
                    quiet=True)
    assert resumed.step == 6
    assert zoo.load(resumed.model_dir).spec.family == "vqgan"


def test_bf16_mixed_precision_and_grad_accumulation_on_cpu(tmp_path):
    result = train(TINY, ["train.max_steps=4", "train.log_every=2", "train.grad_accum=2", "train.threads=1",
                          "train.mixed_precision=bf16", "data.batch_size=2"], output=tmp_path / "run", quiet=True)
    log = read_log(tmp_path / "run")
    assert result.step == 4 and all(torch.isfinite(torch.tensor(r["loss/total"])) for r in log)
    assert json.loads((latest_checkpoint(tmp_path / "run") / "trainer.json").read_text())["data"]["position"] == 16


# ---------------------------------------------------------------------------------------------------------------
# Bad input fails at start, naming the key
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("override, message", [
    (["loss.lpip=1.0"], r"unknown key 'lpip'.*Did you mean: lpips"),
    (["train.max_step=3"], r"unknown key 'max_step'.*max_steps"),
    (["train.max_steps=ten"], r"recipe\.train\.max_steps: expected an integer"),
    (["optim.lr=fast"], r"recipe\.optim\.lr: expected a number"),
    (["data.paths=[/no/such/folder]"], r"recipe\.data\.paths\[0\]: data folder or file not found: /no/such/folder"),
    (["data.paths=[skimage:astronot]"], r"recipe\.data\.paths\[0\].*astronaut"),
    (["model.hidden_channel=8"], r"recipe\.model: unknown key 'hidden_channel'.*hidden_channels"),
    (["family=vqgn"], r"recipe\.family: unknown family 'vqgn'.*vqgan"),
    (["train.mixed_precision=fp8"], r"recipe\.train\.mixed_precision: 'fp8' is not one of"),
    (["data.crop_size=60"], r"recipe\.data\.crop_size 60 is not a multiple"),
    (["loss.proxy_ce=1.0"], r"recipe\.loss\.proxy_ce .*vqgan does not use it"),
    (["train.ema_decay=1.5"], r"recipe\.train\.ema_decay must be in \(0, 1\)"),
    (["data.saturation=[1.5,1.0]"], r"recipe\.data\.saturation takes \[lo, hi\]"),
    (["loss.colour=-1"], r"recipe\.loss\.colour.*must not be negative"),
    (["train.max_steps"], r"--set takes key=value"),
])
def test_bad_recipe_input_fails_at_start_naming_the_key(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        train(TINY, override, output=tmp_path / "run", quiet=True)
    assert not (tmp_path / "run").exists()  # nothing was started


def test_cli_reports_bad_recipe_in_one_line(tmp_path, capsys):
    from zoo.cli import main

    assert main(["train", str(TINY), "-o", str(tmp_path / "r"), "--set", "data.paths=[/nowhere]"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "recipe.data.paths[0]" in err[0] and "/nowhere" in err[0]
    assert main(["train", str(tmp_path / "missing.yaml")]) == 2
    assert "recipe file not found" in capsys.readouterr().err
    assert main(["train", "vqgan/tiny", "--check", "--set", "train.max_steps=5"]) == 0
    assert "max_steps: 5" in capsys.readouterr().out


def _recipes():  # tokenizer recipes (generator recipes are checked in tests/test_generate.py)
    return sorted(p for p in (ROOT / "recipes").rglob("*.yaml") if p.parent.name != "generator")


@pytest.mark.parametrize("path", _recipes(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_recipe_is_valid(path):
    """Every tokenizer recipe in recipes/ loads and passes its family adapter's checks."""
    import yaml

    family = yaml.safe_load(path.read_text())["family"]
    if family not in zoo.list_families():
        pytest.skip(f"family {family} is not in this build yet")
    rec = load_recipe(path, check_data=False)
    assert rec.family == family and rec.train.max_steps >= 1
    from zoo.train.adapters import get_adapter

    try:
        adapter = get_adapter(family)
    except NotImplementedError:
        return
    adapter.check(rec)  # stage, crop size and family-hook settings agree with the family


@pytest.mark.parametrize("path", sorted((ROOT / "recipes" / "generator").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_generator_recipe_is_valid(path):
    """Generator recipes load (the tiny ones leave the tokenizer to --set tokenizer=...)."""
    from zoo.generate.train import load_generator_recipe

    rec = load_generator_recipe(path, ["tokenizer=default"])
    assert rec.tokenizer == "default"
