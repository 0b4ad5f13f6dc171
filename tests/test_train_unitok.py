"""UniTok's training hook: CLIP contrastive loss on captions, next to the pixel and VQ losses.

Runs the tiny recipe (recipes/unitok/tiny.yaml) on scikit-image's bundled photos and their built-in captions.
"""
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import zoo
from zoo import ConfigError
from conftest import torchrun_env
from zoo.train import train
from zoo.train.data import image_source
from zoo.train.losses import clip_contrastive_loss
from zoo.train.recipe import DataConfig

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "recipes" / "unitok" / "tiny.yaml"


def read_log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_clip_loss_is_symmetric_cross_entropy():
    g = torch.Generator().manual_seed(0)
    img = F.normalize(torch.randn(5, 8, generator=g), dim=-1)
    txt = F.normalize(torch.randn(5, 8, generator=g), dim=-1)
    scale = torch.tensor(10.0)
    logits = scale * img @ txt.t()
    expected = (F.cross_entropy(logits, torch.arange(5)) + F.cross_entropy(logits.t(), torch.arange(5))) / 2
    torch.testing.assert_close(clip_contrastive_loss(img, txt, scale), expected)
    assert clip_contrastive_loss(img, img, scale) < clip_contrastive_loss(img, txt, scale)  # matched pairs win
    open_clip_loss = pytest.importorskip("open_clip.loss")  # the loss UniTok trains with, one process
    theirs = open_clip_loss.ClipLoss(local_loss=True, gather_with_grad=True)(img, txt, scale)
    torch.testing.assert_close(clip_contrastive_loss(img, txt, scale), theirs, atol=0, rtol=0)


def test_tiny_recipe_learns_to_match_photos_and_captions(tmp_path):
    run = train(TINY, ["train.max_steps=40", "train.log_every=10"], output=tmp_path / "run", quiet=True)
    log = read_log(tmp_path / "run")
    first, last = log[0], log[-1]
    assert last["loss/clip"] < 0.6 * first["loss/clip"]
    assert last["loss/l2"] < first["loss/l2"]
    assert all(0 < row["clip_logit_scale"] <= 100 for row in log)
    tok = zoo.load(run.model_dir)
    from conftest import photo_batch

    probs = tok.zero_shot(photo_batch(64, names=("astronaut", "coffee")), ["an astronaut", "a cup of coffee"],
                          ["a photo of {}."])
    assert probs.shape == (2, 2) and torch.allclose(probs.sum(1), torch.ones(2))


def test_ddp_gathers_captions_across_processes(tmp_path):
    """2 processes x 3 images (features gathered with gradients) train the same weights as 1 process x 6."""
    args = ["train.max_steps=2", "train.save_every=2", "train.threads=1"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531",
           "-m", "zoo.cli", "train", str(TINY), "-o", str(tmp_path / "ddp"), "-q", "--set", "data.batch_size=3"]
    for a in args:
        cmd += ["--set", a]
    proc = subprocess.run(cmd, env=torchrun_env(), capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    train(TINY, args + ["data.batch_size=6"], output=tmp_path / "one", quiet=True)
    a = load_file(str(tmp_path / "ddp" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "one" / "model" / "model.safetensors"))
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-4
    # without the gather each process would only contrast its own 3 captions: the loss would differ
    assert abs(read_log(tmp_path / "ddp")[-1]["loss/clip"] - read_log(tmp_path / "one")[-1]["loss/clip"]) < 1e-3


def test_captions_from_sidecars_and_webdataset(tmp_path):
    from PIL import Image

    from conftest import photo

    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(photo("coffee")).save(folder / "a.jpg")
    (folder / "a.txt").write_text("a cup of coffee\n")
    src = image_source(DataConfig(paths=[str(folder)], captions=True, crop_size=32))
    assert src.caption(0) == "a cup of coffee"
    Image.fromarray(photo("chelsea")).save(folder / "b.png")
    with pytest.raises(ConfigError, match=r"b\.png has no caption file .*b\.txt"):
        image_source(DataConfig(paths=[str(folder)], captions=True, crop_size=32))

    shard = tmp_path / "s-0.tar"
    with tarfile.open(shard, "w") as tar:
        for key, name, ext, text in (("000", "astronaut", "txt", b"an astronaut"),
                                     ("001", "coffee", "json", b'{"caption": "coffee on a table"}')):
            buf = io.BytesIO()
            Image.fromarray(photo(name)).save(buf, format="JPEG")
            for member, data in ((f"{key}.jpg", buf.getvalue()), (f"{key}.{ext}", text)):
                info = tarfile.TarInfo(member)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    src = image_source(DataConfig(source="webdataset", paths=[str(shard)], captions=True, crop_size=32))
    assert [src.caption(i) for i in range(2)] == ["an astronaut", "coffee on a table"]


@pytest.mark.parametrize("recipe, overrides, message", [
    (TINY, ["data.captions=false"], "loss.clip needs captions"),
    (ROOT / "recipes" / "vqgan" / "tiny.yaml", ["data.captions=true"], "does not train on captions"),
    (TINY, ["data.crop_size=60", "model.image_size=60"], "multiple of 16"),
])
def test_bad_caption_settings_fail_at_start(tmp_path, recipe, overrides, message):
    with pytest.raises(ConfigError, match=message):
        train(recipe, overrides + ["train.max_steps=1"], output=tmp_path / "run", quiet=True)
