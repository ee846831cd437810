"""Loss and grads (hidden, weight, bias) of both backends against the fp64 reference, by the tolerance rule
in flce_cases: dtype x shape x labelled fraction x option. The small odd shape runs the full matrix with
tiny blocks/chunks so vocab tails, several vocab splits and chunk boundaries are all crossed; the BERT-size
head (H=768, V=30522) runs with a handful of labelled rows (Triton interpreted on CPU costs ~10 s a case)."""
import os

import pytest
import torch

from flce_cases import check_against_reference, make_inputs
from hf_pretrain_ext.kernels.ops import flce_torch

SMALL = (4, 47, 31, 123)  # B, T, H, V
BERT = (2, 16, 768, 30522)
DTYPES = [torch.float32, torch.bfloat16, torch.float16]
FRACTIONS = [0.0, "one", 0.15, 1.0]
OPTIONS = {
    "plain": {},
    "bias": dict(bias=True),
    "smoothing": dict(label_smoothing=0.1),
    "z_loss": dict(z_loss=1e-3),
    "softcap": dict(softcap=2.0, scale=4.0),
    "sum": dict(reduction="sum"),
    "none": dict(reduction="none"),
    "num_items": dict(num_items_in_batch=torch.tensor(37)),
    "all": dict(bias=True, label_smoothing=0.1, z_loss=1e-3, softcap=2.0, scale=4.0, num_items_in_batch=37),
}


@pytest.fixture
def small_blocks(monkeypatch):
    """Chunks of 7 rows (torch) and 32-column vocab blocks, 64-column splits, 16-wide H blocks (Triton)."""
    monkeypatch.setattr(flce_torch, "CHUNK_ELEMENTS", 7 * SMALL[-1])
    try:
        from hf_pretrain_ext.kernels.ops import flce_triton
    except ImportError:
        return
    monkeypatch.setattr(flce_triton, "INTERPRET_CONFIG", dict(BLOCK_N=16, BLOCK_V=32, BLOCK_D=16, SPLIT_V=64))


def run_case(shape, dtype, labelled, option):
    options = dict(OPTIONS[option])
    hidden, weight, labels, bias = make_inputs(shape, dtype, labelled, bias=options.pop("bias", False),
                                               scale=options.pop("scale", 1.0))
    upstream = None
    if options.get("reduction") == "none":  # per-token weights, so each row's gradient is checked (Liger #968)
        upstream = torch.rand(labels.shape, generator=torch.Generator().manual_seed(1))
    check_against_reference(hidden, weight, labels, bias, dtype, upstream=upstream, **options)


@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize("labelled", FRACTIONS, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_small_shape(backend, small_blocks, dtype, labelled, option):
    run_case(SMALL, dtype, labelled, option)


# the suite's 6 minutes: one labelled fraction per dtype on the torch backends (HFPX_SLOW=1 runs them all)
BERT_FAST = {("torch", d, f, o) for d, f in zip(DTYPES, (0.15, "one", 0.15)) for o in ("plain", "all")}
BERT_FAST |= {("triton", torch.float32, 0.15, "plain"), ("triton", torch.bfloat16, "one", "all")}


@pytest.mark.parametrize("option", ["plain", "all", "none", "smoothing"])
@pytest.mark.parametrize("labelled", ["one", 0.15], ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_bert_head(backend, dtype, labelled, option):
    if (backend, dtype, labelled, option) not in BERT_FAST and os.environ.get("HFPX_SLOW") != "1":
        pytest.skip("slow: set HFPX_SLOW=1 to run")
    run_case(BERT, dtype, labelled, option)
