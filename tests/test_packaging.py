"""What a user of the installed package meets outside the clone: shipped recipes and suites found by name, one
error naming the extra for optional dependencies, output files with normal modes, the CLI's small promises, and
`zoo eval`'s default metric set running what it can offline. (tests/test_docs.py runs the documented commands
against a real install.)"""
import json
import os
import sys

import pytest
from PIL import Image

import zoo
from conftest import photo
from zoo.cli import build_parser, main
from zoo.errors import ConfigError, MissingExtraError


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """The current folder is an empty one outside the clone."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_shipped_recipes_and_suites_resolve_by_name_from_any_folder(elsewhere):
    from zoo.eval.cli import load_suite
    from zoo.resources import RECIPES_DIR, recipe_path, shipped_recipes, suite_path

    for text in ("vqgan/tiny", "vqgan/tiny.yaml", "recipes/vqgan/tiny.yaml", "./recipes/vqgan/tiny.yaml"):
        assert recipe_path(text) == RECIPES_DIR / "vqgan" / "tiny.yaml"
    assert {"vqgan/tiny", "titok/tiny", "onedpiece/tiny", "unitok/tiny", "generator/tiny"} <= set(shipped_recipes())
    assert load_suite("rate-distortion")["name"] == "rate-distortion" and suite_path("kodak").is_file()
    with pytest.raises(ConfigError, match=r"recipe file not found: vqgan/tiyn.*Did you mean: vqgan/tiny"):
        recipe_path("vqgan/tiyn")
    own = elsewhere / "recipes" / "vqgan" / "tiny.yaml"  # a file where the user points wins over the shipped one
    own.parent.mkdir(parents=True)
    own.write_text("family: vqgan\n")
    assert recipe_path("vqgan/tiny") == own and recipe_path("recipes/vqgan/tiny.yaml") == own.relative_to(elsewhere)


def test_missing_optional_dependency_names_its_extra(monkeypatch):
    from zoo.extras import require
    from zoo.train.data import skimage_photo

    monkeypatch.setitem(sys.modules, "skimage", None)  # as if scikit-image were not installed
    monkeypatch.setitem(sys.modules, "skimage.data", None)
    with pytest.raises(MissingExtraError, match=r"skimage:astronaut needs scikit-image.*visual-tokenizer-zoo\[train\]"):
        skimage_photo("astronaut")
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)
    with pytest.raises(MissingExtraError, match=r"rFID.*torch-fidelity.*visual-tokenizer-zoo\[eval\]"):
        from zoo.eval.features import InceptionExtractor

        InceptionExtractor()
    with pytest.raises(ImportError):  # MissingExtraError is an ImportError for code that catches those
        require("torch_fidelity", "x")


def test_pyproject_declares_what_the_runtime_imports():
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    deps = " ".join(project["dependencies"])
    assert "diffusers" not in deps and "einops" not in deps  # diffusers is an extra: only its family imports it
    extras = project["optional-dependencies"]
    assert any("torch-fidelity" in d for d in extras["eval"]) and any("scikit-image" in d for d in extras["train"])
    assert any("open_clip_torch" in d for d in extras["unitok"]) and any("diffusers" in d for d in extras["diffusers"])
    assert "visual-tokenizer-zoo[eval,train,unitok,diffusers]" in extras["dev"]


def test_cli_small_promises(model_dir, elsewhere, capsys):
    # zoo info on a folder
    assert main(["info", str(model_dir)]) == 0
    out = capsys.readouterr().out
    assert "family vqgan" in out and "tokens:" in out and "parameters:" in out
    assert main(["info", str(model_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["family"] == "vqgan"
    # zoo list with a pattern that matches nothing
    assert main(["list", "no-such-*"]) == 2
    assert "no registered model matches pattern 'no-such-*'" in capsys.readouterr().err
    # encode into a folder that does not exist yet; files get the umask's mode, not safetensors' 0600
    Image.fromarray(photo("coffee")).save(elsewhere / "coffee.png")
    assert main(["encode", "coffee.png", "-m", str(model_dir), "-o", "new/folder/codes.safetensors", "-q",
                 "--device", "cpu"]) == 0
    codes = elsewhere / "new" / "folder" / "codes.safetensors"
    mask = os.umask(0o022)
    os.umask(mask)
    assert codes.stat().st_mode & 0o777 == 0o666 & ~mask
    zoo.load(str(model_dir)).save_pretrained(elsewhere / "saved")
    assert (elsewhere / "saved" / "model.safetensors").stat().st_mode & 0o777 == 0o666 & ~mask


def test_every_output_option_has_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    missing = [name for name, p in sub.choices.items() for a in p._actions
               if "-o" in a.option_strings and not a.help]
    assert not missing, missing


def test_eval_default_metrics_run_what_they_can_offline(model_dir, elsewhere, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(elsewhere / "no-torch-cache"))  # no Inception, no LPIPS weights here
    monkeypatch.delenv("ZOO_WEIGHTS_DIR", raising=False)
    for name in ("astronaut", "coffee"):
        Image.fromarray(photo(name)).save(elsewhere / f"{name}.png")
    assert main(["eval", "-m", str(model_dir), "--data", str(elsewhere), "-o", "report", "-q", "--device", "cpu",
                 "--batch-size", "2"]) == 0
    report = json.loads((elsewhere / "report" / "report.json").read_text())
    skipped = report["meta"]["skipped_metrics"]
    assert set(skipped) == {"rfid", "lpips"} and "weights-inception-2015-12-05" in skipped["rfid"]
    row = report["results"][0]
    assert row["psnr"] > 5 and "ssim" in row and "rfid" not in row
    assert "Not measured: rfid" in (elsewhere / "report" / "report.md").read_text()
    err = capsys.readouterr().err
    assert "not measuring rfid" in err and "not measuring lpips" in err
    # named with --metrics, a metric that cannot run stops before any image is read
    assert main(["eval", "-m", str(model_dir), "--data", str(elsewhere), "--metrics", "psnr,rfid", "-o", "r2", "-q",
                 "--device", "cpu"]) == 2
    assert "weights-inception-2015-12-05" in capsys.readouterr().err and not (elsewhere / "r2").exists()
