"""Export an hfpx checkpoint to the stock transformers architecture, loadable without this package.

Every hfpx model keeps its stock model's weight names (hfpx-bert: BERT, hfpx-gpt: GPT-2, hfpx-bart: BART,
hfpx-t5: T5), so the export is a config rewrite (stock model_type, our loss switches dropped, architectures
renamed, e.g. HfpxBert* -> Bert*, HfpxGPTForCausalLM -> GPT2LMHeadModel) and a load into the stock class, which checks that every weight
is consumed. Hub users then need no custom code. Usable as `python -m hf_pretrain_ext.export SRC DST`.
"""
import argparse
import sys
from pathlib import Path

import transformers
from transformers import AutoConfig, AutoTokenizer

from .errors import UserError
from .registry import get_family

_EXTRA_KEYS = ("sparse_prediction", "use_fused_loss", "loss_backend")


def stock_config(config):
    """The stock config of an hfpx config, and the stock class name of its first architecture (the family's
    registry entry names the stock type and the class-name prefixes)."""
    family = get_family(config.model_type)
    if family is None or family.model_type != config.model_type:
        raise UserError(f"model_type {config.model_type!r} is already a stock architecture; nothing to export")
    if family.stock_type is None:
        raise UserError(f"model_type {config.model_type!r} has no stock transformers architecture to export to; "
                        "load it with hf_pretrain_ext installed")
    ours_prefix, stock_prefix = family.class_prefix
    values = {k: v for k, v in config.to_dict().items() if k not in _EXTRA_KEYS + ("model_type",)}
    arch = (config.architectures or [family.default_architecture])[0]
    stock_arch = arch.replace(ours_prefix, stock_prefix, 1)
    stock_arch = family.renamed.get(stock_arch, stock_arch)
    values["architectures"] = [stock_arch]
    return AutoConfig.for_model(family.stock_type, **values), stock_arch


def export_stock(src, dst):
    """Write the stock-architecture version of checkpoint `src` (model + tokenizer) to the new folder `dst`."""
    import hf_pretrain_ext  # noqa: F401  (registers hfpx types so AutoConfig reads src)
    dst = Path(dst)
    if dst.exists() and any(dst.iterdir()):
        raise UserError(f"export destination {dst} already holds files; choose an empty folder")
    config, arch = stock_config(AutoConfig.from_pretrained(src))
    cls = getattr(transformers, arch, None)
    if cls is None:
        raise UserError(f"transformers has no class {arch}")
    model, info = cls.from_pretrained(src, config=config, output_loading_info=True)
    unused = [k for k in info.get("unexpected_keys", []) if k]
    missing = [k for k in info.get("missing_keys", []) if not k.endswith("position_ids")]
    if unused or missing:
        raise UserError(f"export to {arch} would drop {unused} or leave {missing} uninitialised")
    model.save_pretrained(dst)
    try:
        AutoTokenizer.from_pretrained(src).save_pretrained(dst)
    except (OSError, ValueError):
        pass  # a checkpoint without a tokenizer exports without one
    return dst


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", help="hfpx checkpoint folder")
    parser.add_argument("dst", help="new, empty output folder")
    args = parser.parse_args(argv)
    try:
        export_stock(args.src, args.dst)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"exported {args.src} -> {args.dst} (load with plain transformers, no hf_pretrain_ext needed)")


if __name__ == "__main__":
    main()
