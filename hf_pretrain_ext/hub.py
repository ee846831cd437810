"""Hub upload: the stock-architecture export plus a generated model card, through huggingface_hub's own API.

`prepare_upload(output_dir, folder, ...)` builds the exact folder that is uploaded: for hfpx models the stock
export (so Hub users need no custom code), else the saved model files; the tokenizer; `loss_curve.png`; and a
README.md model card with the objective, data, hyper-parameters, metrics and the loss plot. `push_folder` uploads
it with `HfApi.create_repo` + `HfApi.upload_folder`. `--hub_dry_run` stops after preparing, for offline checks.
"""
import json
import shutil
from pathlib import Path

from .errors import UserError
from .export import export_stock

MODEL_FILES = ("config.json", "generation_config.json", "model.safetensors", "model.safetensors.index.json",
               "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "merges.txt",
               "vocab.json")


def prepare_upload(output_dir, folder, objective, data, hyperparameters, metrics, repo_id=None, license=None,
                   pipeline=None, description=None):
    """Write the folder that would be uploaded; returns its path (rebuilt if it exists). `repo_id` goes into the
    card's usage example, `license` into its metadata, `pipeline` (the Hub pipeline tag) and `description` (what
    the objective does) come from the objective's registry entry."""
    output_dir, folder = Path(output_dir), Path(folder)
    if folder.exists():
        shutil.rmtree(folder)  # ours, rebuilt on every run (it lives inside the run's output_dir)
    config = json.loads((output_dir / "config.json").read_text())
    if config.get("model_type", "").startswith("hfpx-"):
        export_stock(output_dir, folder)
    else:
        folder.mkdir(parents=True)
        for name in MODEL_FILES:
            if (output_dir / name).is_file():
                shutil.copy2(output_dir / name, folder / name)
        for shard in output_dir.glob("model-*.safetensors"):
            shutil.copy2(shard, folder / shard.name)
    if (output_dir / "loss_curve.png").is_file():
        shutil.copy2(output_dir / "loss_curve.png", folder / "loss_curve.png")
    stock = json.loads((folder / "config.json").read_text())
    (folder / "README.md").write_text(model_card(stock, objective, data, hyperparameters, metrics,
                                                 (folder / "loss_curve.png").is_file(), repo_id, license,
                                                 pipeline, description),
                                      encoding="utf-8")
    return folder


# the Auto class that loads the whole exported model, by the architecture's suffix
_AUTO = (("ForMaskedLM", "AutoModelForMaskedLM"), ("ForPreTraining", "AutoModelForPreTraining"),
         ("ForCausalLM", "AutoModelForCausalLM"), ("LMHeadModel", "AutoModelForCausalLM"),
         ("ForConditionalGeneration", "AutoModelForSeq2SeqLM"))
# evaluation figures that describe the machine, not the model
_NOT_METRICS = ("runtime", "per_second", "samples", "epoch")


def model_card(config, objective, data, hyperparameters, metrics, has_plot, repo_id=None, license=None, pipeline=None,
               description=None):
    arch = (config.get("architectures") or ["AutoModel"])[0]
    auto = next((a for suffix, a in _AUTO if arch.endswith(suffix)), "AutoModel")
    repo = repo_id or "REPO_ID"
    metrics = {k: v for k, v in metrics.items() if not any(word in k for word in _NOT_METRICS)}
    lines = ["---", "library_name: transformers", f"license: {license or 'other'}",
             f"pipeline_tag: {pipeline or 'feature-extraction'}",
             "tags:", "- hf_pretrain_ext", f"- {objective}", "---", "",
             f"# {config.get('model_type', 'model')} pretrained with hf_pretrain_ext ({objective})", "",
             f"Architecture: `{arch}` ({config.get('num_hidden_layers', '?')} layers, hidden size "
             f"{config.get('hidden_size', '?')}, vocabulary {config.get('vocab_size', '?')}). Loads with plain "
             "transformers; no custom code.", "", "## Objective", "", description or objective, "",
             "## Data", ""]
    lines += [f"- {d}" for d in data] + ["", "## Hyper-parameters", "", "| name | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in hyperparameters.items()]
    lines += ["", "## Evaluation (held-out split)", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in metrics.items()]
    if has_plot:
        lines += ["", "## Training loss", "", "![training loss](loss_curve.png)"]
    lines += ["", "## Usage", "", "```python", f"from transformers import {auto}, AutoTokenizer",
              f'model = {auto}.from_pretrained("{repo}")', f'tokenizer = AutoTokenizer.from_pretrained("{repo}")',
              "```", ""]
    return "\n".join(lines)


def _fmt(v):
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def push_folder(folder, repo_id, token=None, private=None):
    """Upload `folder` to the Hub model repo `repo_id` (created if missing)."""
    from huggingface_hub import HfApi
    if not repo_id:
        raise UserError("--push_to_hub needs --hub_model_id (e.g. your-name/my-bert)")
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", exist_ok=True, private=private)
    return api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model",
                             commit_message="Upload model pretrained with hf_pretrain_ext")
