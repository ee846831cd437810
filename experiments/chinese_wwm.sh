#!/usr/bin/env bash
# Chinese whole-word-masking pretraining run (jieba), then reload via Auto* and export to stock BERT.
#   bash experiments/chinese_wwm.sh [OUT] [STEPS]
# Needs ../shared/data/zh_pretrain (CLUECorpusSmall sample; not shipped with the package).
set -euo pipefail
OUT=${1:-/tmp/hfpx-zh-wwm}
STEPS=${2:-300}
DATA=$(cd "$(dirname "$0")/../.." && pwd)/shared/data/zh_pretrain/CLUECorpusSmall_sampled.txt
rm -rf "$OUT" "$OUT-stock"
python run_pretrain.py --objective wwm --segmenter jieba --train_file "$DATA" --output_dir "$OUT" \
    --max_steps "$STEPS" --logging_steps 20 --save_steps 1000 --max_seq_length 128 --tokenizer_vocab_size 8000 \
    --disable_tqdm true
python -m hf_pretrain_ext.export "$OUT" "$OUT-stock"
python - "$OUT" "$OUT-stock" <<'PY'
import json, sys
import torch, transformers
out, stock = sys.argv[1], sys.argv[2]
m = transformers.AutoModelForMaskedLM.from_pretrained(stock)
t = transformers.AutoTokenizer.from_pretrained(stock)
assert "hf_pretrain_ext" not in sys.modules
enc = t("今天天气很[MASK]。", return_tensors="pt")
pos = (enc["input_ids"][0] == t.mask_token_id).nonzero()[0, 0]
top = m(**enc).logits[0, pos].topk(5).indices.tolist()
state = json.load(open(f"{out}/trainer_state.json"))
losses = [(h["step"], round(h["loss"], 3)) for h in state["log_history"] if "loss" in h]
print("stock export:", type(m).__name__, "top-5 for 今天天气很[MASK]。:", t.convert_ids_to_tokens(top))
print("loss by step:", losses)
print("first logged loss", losses[0][1], "last", losses[-1][1], "falls:", losses[-1][1] < losses[0][1])
PY
