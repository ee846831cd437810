"""The wheel a user installs (`pip install .`, or what a package index serves), not the editable checkout.

Builds the wheel from the repository, unpacks it into a folder and, in a fresh `python -S` (site-packages not
processed, so the editable install's path hook is out of the way; the dependencies come from PYTHONPATH), run from
another directory: imports every module of the package from the unpacked wheel, loads both shipped `evaluate`
modules by path, finds the sample corpus, and runs `hf-pretrain --help`'s entry point. A module left out of the
wheel (hf_pretrain_ext.kernels.ops once was) fails here.
"""
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CHECK = r"""
import importlib, json, os, pkgutil, sys
site = sys.argv[1]
import hf_pretrain_ext
assert hf_pretrain_ext.__file__.startswith(site), hf_pretrain_ext.__file__
names = [m.name for m in pkgutil.walk_packages(hf_pretrain_ext.__path__, "hf_pretrain_ext.")]
for name in names:
    module = importlib.import_module(name)
    assert module.__file__.startswith(site), (name, module.__file__)
from hf_pretrain_ext.metrics import load_metric
scores = load_metric("masked_token_accuracy").compute(predictions=[1, 2], references=[1, 3], baseline_token_id=3)
cls = load_metric("classification").compute(predictions=[1, 0, 1], references=[1, 1, 1], num_labels=2)
from hf_pretrain_ext.data.loading import SAMPLE_CORPUS
assert SAMPLE_CORPUS.is_file() and str(SAMPLE_CORPUS).startswith(site)
print(json.dumps({"modules": names, "mlm": scores, "cls": cls}))
from hf_pretrain_ext.cli import main  # the hf-pretrain entry point
sys.argv = ["hf-pretrain", "--help"]
main()
"""


def test_wheel_is_complete_and_imports_without_the_checkout(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                    "-w", str(dist), str(REPO)], check=True, cwd=tmp_path, capture_output=True)
    (wheel,) = dist.glob("hf_pretrain_ext-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert "kernels" not in tops, "a top-level `kernels` would shadow the Hugging Face kernels package"
    assert {t for t in tops if not t.endswith(".dist-info")} == {"hf_pretrain_ext"}
    for must in ("hf_pretrain_ext/kernels/ops/flce_triton.py", "hf_pretrain_ext/kernels/ops/flce_torch.py",
                 "hf_pretrain_ext/sample_data/sample_corpus.txt",
                 "hf_pretrain_ext/evaluate_modules/classification/classification.py",
                 "hf_pretrain_ext/evaluate_modules/masked_token_accuracy/masked_token_accuracy.py"):
        assert must in names, must
    # every .py file of the source trees is in the wheel
    sources = {f"hf_pretrain_ext/{p.relative_to(REPO / 'hf_pretrain_ext')}"
               for p in (REPO / "hf_pretrain_ext").rglob("*.py") if "__pycache__" not in p.parts}
    sources |= {f"hf_pretrain_ext/kernels/{p.relative_to(REPO / 'kernels')}"
                for p in (REPO / "kernels").rglob("*.py") if "__pycache__" not in p.parts}
    assert sources <= set(names), sorted(sources - set(names))
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    scripts = zipfile.ZipFile(wheel).read(entry).decode()
    assert "hf-pretrain = hf_pretrain_ext.cli:main" in scripts and "hf-finetune = " in scripts

    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = {"PYTHONPATH": f"{site}:{sysconfig.get_paths()['purelib']}", "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-S", "-c", CHECK, str(site)], cwd=tmp_path, env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    import json
    report = json.loads(next(line for line in out.stdout.splitlines() if line.startswith('{"modules"')))
    assert "hf_pretrain_ext.kernels.ops.flce_torch" in report["modules"]
    assert report["mlm"] == {"masked_tokens": 2, "accuracy": 0.5, "baseline_accuracy": 0.5}
    assert abs(report["cls"]["accuracy"] - 2 / 3) < 1e-9 and report["cls"]["f1"] == 0.8
    assert "--objective" in out.stdout and "usage: hf-pretrain" in out.stdout
