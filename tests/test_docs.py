"""Every command the README and docs/ show either runs, as written, against the *installed* package from a folder
outside the clone, or is marked here with the reason it cannot run in CI (network, GPU, data we do not have).

The package is installed once per session into a fresh venv (``--system-site-packages`` for torch and friends,
``pip install --no-deps --no-build-isolation`` of a copy of this checkout: offline, and a package-data file missing
from pyproject.toml fails here). Commands run with the venv's ``zoo`` and ``python`` first on PATH, from a temporary
folder holding only copies of examples/ (and a photo.jpg), offline (HF_HUB_OFFLINE=1, empty caches), in document
order, so later commands see what earlier ones wrote (a trained model, a code cache). Expensive commands get tiny
settings appended (ADJUST), shown in the listing this test prints at the end of the session.

Only fenced blocks labelled bash/sh/shell/console are commands; every fenced block must be labelled (``text`` for
layouts), so a new command block cannot slip past this test.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Two lanes run side by side, each in its own folder and in document order: generate.md trains a generator on the
# tokenizer that train.md's tiny run wrote. Every doc is in exactly one lane.
LANES: list[list[Path]] = [
    [ROOT / "README.md", ROOT / "docs" / "eval.md", ROOT / "docs" / "hub.md", ROOT / "docs" / "ARCHITECTURE.md",
     ROOT / "docs" / "your-tokenizer.md", ROOT / "docs" / "latents.md", ROOT / "docs" / "speed.md",
     *sorted((ROOT / "docs" / "families").glob("*.md"))],
    [ROOT / "docs" / "train.md", ROOT / "docs" / "generate.md"],
]
DOCS = [doc for lane in LANES for doc in lane]
COMMAND_LANGS = ("bash", "sh", "shell", "console")

# Commands that cannot run in CI, by regex on the command (as written), with the reason. A marker that matches no
# documented command fails the test, so the list cannot go stale.
NETWORK = "needs network: the official checkpoint comes from the Hugging Face Hub"
MARKED: list[tuple[str, str]] = [
    (r'^pip install "\.\[dev\]" && python -m pytest', "the test suite itself (.ci/run runs this line)"),
    (r"-m onedpiece-s-256 --tokens", NETWORK),
    (r"^zoo eval -m onedpiece-s-256,titok-l32 --data /data/imagenet", NETWORK + "; and ImageNet-val at /data"),
    (r"^zoo eval -m onedpiece-l-256 --suite rate-distortion --data /data/kodak", NETWORK + "; and Kodak at /data"),
    (r"^zoo eval -m imagefolder-4096 --data imagenet/val", NETWORK + "; and ImageNet-val"),
    (r"^accelerate launch -m zoo.cli eval -m titok-l32", NETWORK + "; and ImageNet shards"),
    (r"^zoo generate -g maskgit-titok-l32", NETWORK + " (or a downloaded generator file)"),
    (r"^zoo eval-generator -g maskgit-titok-l32", NETWORK + "; and reference statistics of ImageNet"),
    (r"^zoo convert (titok-l32|maskgit-vqgan) --checkpoint", "needs the official checkpoint file (downloaded by hand)"),
    (r"^zoo push ", "needs network: pushes to the Hugging Face Hub (tests/test_hub.py pushes to a loopback hub)"),
    (r"^zoo reconstruct photo.jpg -m hf://", "needs network: pulls from the Hugging Face Hub (tests/test_hub.py)"),
    (r"tokenizer=my-unitok-folder", "placeholder: a UniTok folder you trained (tests/test_generate.py trains one)"),
    (r"^zoo train recipes/titok/titok_l32_stage1.yaml --check",
     "needs data: --check verifies the ImageNet shards the published recipe names exist"),
    (r"^accelerate launch --num_processes 8", "needs 8 GPUs"),
    (r"^accelerate launch --config_file fsdp.yaml", "needs GPUs (FSDP) and a recipe of yours (RECIPE)"),
    (r"^torchrun --nnodes 2", "needs 2 nodes with 8 GPUs"),
    (r"^ACCELERATE_USE_CPU=yes torchrun",
     "2 CPU processes for the full tiny run; tests/test_train.py runs torchrun with gloo on a short run"),
    (r"^apt-get install -y plasma-workspace-wallpapers", "installs Debian packages (root, network)"),
    (r"^zoo train recipes/convfsq/default(_colour|_colour_map)?.yaml",
     "retrains the embedded default model (about 130 CPU minutes in three stages; tests/test_convfsq.py trains a tiny "
     "one)"),
    (r"^python -m zoo.train.default_model export", "overwrites the package's embedded weights with a run's model"),
    (r"^python -m zoo.train.default_model report", "slow (about a minute): recomputes the default model's report"),
    (r"^zoo (reconstruct photo.jpg|eval) -m (onedpiece-s-256|titok-l32) .*--compile",
     NETWORK + "; compiles with inductor (tests/test_speed.py runs --compile on a tiny model)"),
    (r"^python -m venv --system-site-packages /tmp/venv", "needs network: installs the official code's dependencies"),
    (r"^git clone https://github.com/turingmotors/One-D-Piece", "needs network: fetches the official repository"),
    (r"benchmarks/vs_official.py", "needs a checkout of the official repository (fetched by hand) and its "
                                   "dependencies; builds two released-size models"),
    (r"^python benchmarks/upsample_conv.py", "a benchmark of the source checkout: times released-size decoders "
                                            "(minutes); tests/test_upsample_conv.py checks the layer itself"),
    (r"^python benchmarks/roofline.py", "a benchmark of the source checkout: profiles released-size models "
                                        "(minutes); tests/test_roofline.py checks what it counts on tiny modules"),
    (r"^zoo (eval|reconstruct) .*--precision bf16.* --device cuda",
     "needs a GPU: this CPU emulates bf16 (50-400x slower); tests/test_precision.py runs --precision on a tiny model"),
    (r"^python benchmarks/precision.py", "a benchmark of the source checkout: encodes and decodes photos in bf16 and "
                                         "fp16 (this CPU emulates them: minutes); tests/test_precision.py runs it "
                                         "on a tiny model"),
    (r"^python benchmarks/eval_io.py", "a benchmark of the source checkout: evaluates on 32 photos several times "
                                       "(minutes); tests/test_eval_io.py runs it on two photos"),
    (r"benchmarks/vs_official_generate.py", "needs a checkout of the official repository (fetched by hand) and its "
                                            "dependencies; samples with two released-size generators"),
]

# Tiny settings appended to expensive commands (regex on the command as written -> extra arguments).
ADJUST: list[tuple[str, str]] = [
    (r"^zoo train vqgan/tiny -o runs/mine --resume", "--set train.max_steps=3"),
    (r"^zoo train (?!.*--check)", "--set train.max_steps=2 --set train.log_every=1"),
    (r"^zoo train-generator ", "--set train.max_steps=2 --set train.log_every=1 --set crops_per_image=1"),
    (r"^zoo eval ", "--limit 1"),
]


@dataclass
class Command:
    doc: str
    line: int
    text: str

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"


def fenced_blocks(text: str) -> list[tuple[str, int, list[str]]]:
    """(language, first line number, lines) of every fenced block."""
    blocks, lang, start, lines = [], None, 0, []
    for number, line in enumerate(text.splitlines(), 1):
        if lang is None:
            m = re.match(r"^```\s*([\w+-]*)\s*$", line)
            if m:
                lang, start, lines = m.group(1), number + 1, []
        elif line.startswith("```"):
            blocks.append((lang, start, lines))
            lang = None
        else:
            lines.append(line)
    return blocks


def strip_comment(line: str) -> str:
    """A shell line without its trailing ``# comment`` (a # outside quotes, after whitespace)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def documented_commands(docs: list[Path] = DOCS) -> list[Command]:
    commands = []
    for doc in docs:
        rel = str(doc.relative_to(ROOT))
        for lang, start, lines in fenced_blocks(doc.read_text()):
            if lang not in COMMAND_LANGS:
                continue
            pending, first = "", None
            for offset, raw in enumerate(lines):
                line = strip_comment(raw) if not pending else raw.rstrip()
                if not line.strip() and not pending:
                    continue
                first = start + offset if first is None else first
                if line.endswith("\\"):
                    pending += strip_comment(line[:-1]) + " "
                    continue
                commands.append(Command(rel, first, " ".join((pending + strip_comment(line)).split())))
                pending, first = "", None
    return commands


def marker_for(command: Command) -> str | None:
    reasons = [reason for pattern, reason in MARKED if re.search(pattern, command.text)]
    return reasons[0] if reasons else None


def runnable_form(text: str) -> str:
    """The command as run: ``pip install .`` (done by the venv fixture) dropped, tiny settings appended to each
    part of an ``&&`` chain that needs them."""
    parts = [p.strip() for p in text.split("&&")]
    parts = [p for p in parts if not re.fullmatch(r"pip install \.", p)]
    out = []
    for part in parts:
        for pattern, extra in ADJUST:
            if re.search(pattern, part):
                part = f"{part} {extra}"
                break
        out.append(part)
    return " && ".join(out)


LISTING: list[str] = []


# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A venv with this checkout installed as users install it (non-editable), offline."""
    base = tmp_path_factory.mktemp("docs-venv")
    src = base / "src"  # a clean copy: no stale build/ of the checkout can leak into the install
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "zoo", "recipes", "eval"):
        item = ROOT / name
        if item.is_dir():
            shutil.copytree(item, src / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
        else:
            shutil.copy2(item, src / name)
    env_dir = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(env_dir)],
                   check=True)
    py = env_dir / "bin" / "python"
    done = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                           str(src)], capture_output=True, text=True, cwd=base)
    assert done.returncode == 0, ("pip install of the checkout failed (offline, without build isolation: the "
                                  "interpreter running the tests needs setuptools>=70.1 or setuptools + wheel)\n"
                                  + done.stdout + done.stderr)
    where = subprocess.run([str(py), "-c", "import zoo; print(zoo.__file__)"], capture_output=True, text=True,
                           cwd=base, env=_env(env_dir, base))
    assert where.stdout.strip().startswith(str(env_dir)), where.stdout + where.stderr  # the installed copy
    return env_dir


def _env(env_dir: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=f"{env_dir / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}", VIRTUAL_ENV=str(env_dir),
               HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_CACHE=str(home / "hf-cache"),
               ZOO_CACHE=str(home / "zoo-cache"), TORCH_HOME=str(home / "torch"), OMP_NUM_THREADS="1",
               MPLBACKEND="Agg")
    env.pop("ZOO_WEIGHTS_DIR", None)
    return env


def make_workspace(base: Path) -> Path:
    """A folder outside the clone with what the docs' commands read: examples/ and photo.jpg."""
    base.mkdir(parents=True)
    assert ROOT not in base.parents
    shutil.copytree(ROOT / "examples", base / "examples")
    shutil.copy2(ROOT / "examples" / "coffee.jpg", base / "photo.jpg")
    return base


def run_lane(docs: list[Path], workspace: Path, env: dict[str, str]) -> tuple[list[str], list[str]]:
    """Run one lane's commands in order: (listing lines, failures)."""
    listing, failures = [], []
    for command in documented_commands(docs):
        reason = marker_for(command)
        if reason:
            listing.append(f"MARKED {command.where:<22} {command.text}\n{'':30}-> {reason}")
            continue
        run = runnable_form(command.text)
        t0 = time.time()
        with tempfile.TemporaryFile("w+") as log:
            child = subprocess.Popen(["bash", "-euo", "pipefail", "-c", run], cwd=workspace, env=env,
                                     stdout=log, stderr=subprocess.STDOUT)
            _, status, usage = os.wait4(child.pid, 0)  # CPU seconds: a figure the machine's load does not change
            child.returncode = code = os.waitstatus_to_exitcode(status)
            log.seek(0)
            output = log.read()
        note = "" if run == command.text else f"\n{'':30}as run: {run}"
        listing.append(f"RAN    {command.where:<22} {command.text}  [{time.time() - t0:.0f} s, "
                       f"{usage.ru_utime + usage.ru_stime:.0f} s CPU, exit {code}]{note}")
        if code != 0:
            failures.append(f"{command.where}: `{run}` exited {code}\n{output[-3000:]}")
    return listing, failures


def test_every_fenced_block_is_labelled_and_every_marker_is_used():
    unlabelled = [f"{doc.relative_to(ROOT)}:{start - 1}" for doc in DOCS
                  for lang, start, _ in fenced_blocks(doc.read_text()) if not lang]
    assert not unlabelled, f"label these fenced blocks (bash for commands, text for layouts): {unlabelled}"
    commands = documented_commands()
    assert len(commands) >= 30
    unused = [p for p, _ in MARKED if not any(re.search(p, c.text) for c in commands)]
    assert not unused, f"markers that match no documented command (remove them): {unused}"
    unused = [p for p, _ in ADJUST if not any(re.search(p, part.strip()) for c in commands
                                              for part in c.text.split("&&"))]
    assert not unused, f"adjustments that match no documented command (remove them): {unused}"


def test_documented_commands_run_from_the_installed_package(venv, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    started = time.time()
    spaces = [make_workspace(tmp_path / f"lane{i}") for i in range(len(LANES))]
    with ThreadPoolExecutor(len(LANES)) as pool:
        results = list(pool.map(lambda i: run_lane(LANES[i], spaces[i], _env(venv, spaces[i])), range(len(LANES))))
    LISTING.clear()
    order = {str(doc.relative_to(ROOT)): n for n, doc in enumerate(DOCS)}
    lines = [line for listing, _ in results for line in listing]
    LISTING.extend(sorted(lines, key=lambda l: (order[l[7:].split(":")[0]], int(l[7:].split(":")[1].split()[0]))))
    cpu = sum(int(m) for m in re.findall(r"(\d+) s CPU", "\n".join(LISTING)))
    LISTING.append(f"({sum(l.startswith('RAN') for l in LISTING)} run, {sum(l.startswith('MARKED') for l in LISTING)} "
                   f"marked; {time.time() - started:.0f} s wall in {len(LANES)} lanes, {cpu} s CPU)")
    print("\n".join(LISTING))
    failures = [f for _, fails in results for f in fails]
    assert not failures, "\n\n".join(failures)
    # what the commands were there to show really happened
    readme, train = spaces
    assert (readme / "out" / "grid.png").is_file()
    codes = readme / "codes" / "examples.safetensors"
    assert codes.is_file() and codes.stat().st_mode & 0o777 == 0o666 & ~_umask()  # a new folder; not 0600
    assert "Not measured: rfid" in (readme / "rd" / "report.md").read_text()  # the suite ran offline
    assert (readme / "runs" / "generator-tiny" / "generator" / "config.json").is_file()  # README's tokenizer=default
    assert (readme / "card" / "README.md").is_file()
    assert (train / "samples" / "grid.png").is_file()


HUB_SCRIPT = """
import sys
sys.path.insert(0, sys.argv[1])  # tests/ for fakehub.py only: zoo itself is the installed copy
import os, torch, zoo
from fakehub import FakeHub
from zoo import Tokenizer
from zoo.families.vqgan import TINY_CONFIG
assert zoo.__file__.startswith(sys.argv[2]), zoo.__file__
with FakeHub(lifetime=120) as hub:
    os.environ["HF_ENDPOINT"] = hub.endpoint
    torch.manual_seed(0)
    tok = zoo.build("vqgan", TINY_CONFIG).eval()
    tok.push_to_hub("user/repo", tag="v1")
    pulled = Tokenizer.from_pretrained("user/repo", revision="v1", cache_dir="hf-cache", token="hf_dummy")
    x = torch.rand(1, 3, 64, 64)
    assert torch.equal(pulled.encode(x).indices, tok.encode(x).indices)
    print("from_pretrained('user/repo') OK from", zoo.__file__)
"""


def test_from_pretrained_user_repo_from_the_installed_package(venv, tmp_path):
    """Tokenizer.from_pretrained("user/repo") against the loopback hub (tests/fakehub.py), run by the venv."""
    env = dict(_env(venv, tmp_path), HF_HUB_OFFLINE="0")
    done = subprocess.run([str(venv / "bin" / "python"), "-c", HUB_SCRIPT, str(ROOT / "tests"), str(venv)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "from_pretrained('user/repo') OK" in done.stdout


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def docs_listing() -> list[str]:
    """The run/marked listing of the last run (printed in the terminal summary by conftest.py)."""
    return list(LISTING)
