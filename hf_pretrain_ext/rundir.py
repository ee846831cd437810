"""A run owns its output directory: a lock, a run identity on every checkpoint, intact-checkpoint checks.

- `OutputDir` (a context manager around a run): creates the directory if needed (an unusable path is a one-line
  error before any work) and takes an OS file lock on `<output_dir>/.hfpx_lock` (fcntl.flock: released by the
  kernel on any exit, kill -9 included), so a second run on the same directory stops at once with an error naming
  the first. If the run fails before training starts, a directory it created is removed again, so the corrected
  command is not refused as "already holds files". Only the main process locks and cleans (DDP ranks share it).
- Run identity: `hfpx_run.json` carries a `run_id`; each checkpoint gets a copy (`CHECKPOINT_RECORD`), so rotation
  removes only the current run's older checkpoints, `--overwrite_output_dir` moves another run's checkpoints
  aside into `superseded-<time>/` instead of mixing with them, and a resume can compare the configuration.
- `checkpoint_problem(path)` checks a checkpoint without loading it: trainer state, safetensors headers against
  the file sizes, optimizer and scheduler files complete (their zip directories readable).
- `new_run_record` / `check_resume_matches`: a resumed run keeps its run_id, and is refused when the objective,
  sequence length, tokenizer vocabulary or model shape differ from the checkpoint's.
"""
import errno
import fcntl
import hashlib
import json
import os
import shutil
import socket
import struct
import time
import uuid
import zipfile
from pathlib import Path

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .errors import UserError

LOCK = ".hfpx_lock"
CHECKPOINT_RECORD = "hfpx_run.json"
IGNORED = {LOCK}  # files of ours that do not make a directory "hold something"


class OutputDir:
    """Claim `path` for this run (see the module docstring); `started()` marks the point after which a failure
    keeps everything (checkpoints may exist)."""

    def __init__(self, path, is_main=True, argv=None):
        self.path, self.is_main, self.argv = Path(path), is_main, argv
        self.created, self._fd, self._started = False, None, False

    def __enter__(self):
        if not self.is_main:
            return self
        out = self.path
        if out.exists() and not out.is_dir():
            raise UserError(f"--output_dir {out}: exists and is not a directory")
        blocker = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            raise UserError(f"--output_dir {out}: {blocker} is a file, not a directory")
        self.created = not out.exists()
        try:
            out.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            self._remove_if_created()
            raise UserError(f"--output_dir {out}: cannot be written ({e.strerror or e})") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            owner = _read_owner(self._fd)
            os.close(self._fd)
            self._fd = None
            raise UserError(f"--output_dir {out} is in use by another run ({owner}); wait for it to finish or "
                            f"choose another --output_dir") from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                                        "argv": self.argv}).encode(), 0)
        return self

    def started(self):
        self._started = True

    def __exit__(self, exc_type, exc, tb):
        if self._fd is not None:
            if exc_type is not None and not self._started:
                self._remove_if_created()
            os.close(self._fd)  # releases the lock
            self._fd = None
        return False

    def _remove_if_created(self):
        if self.created:
            shutil.rmtree(self.path, ignore_errors=True)


def _read_owner(fd):
    try:
        owner = json.loads(os.pread(fd, 65536, 0) or b"{}")
        return f"pid {owner.get('pid')} on {owner.get('host')}, started {owner.get('started')}"
    except (OSError, ValueError):
        return "owner unknown"


def holds_something(path):
    """Whether a directory holds anything besides our lock file."""
    return any(p.name not in IGNORED for p in Path(path).iterdir())


# -- checkpoints --------------------------------------------------------------------------------------------------
def checkpoints(run_dir):
    """(step, path) of every checkpoint-N folder directly in run_dir, oldest first."""
    found = []
    for p in Path(run_dir).glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
        step = p.name[len(PREFIX_CHECKPOINT_DIR) + 1:]
        if p.is_dir() and step.isdigit():
            found.append((int(step), p))
    return sorted(found)


def run_record(checkpoint):
    try:
        return json.loads(Path(checkpoint, CHECKPOINT_RECORD).read_text())
    except (OSError, ValueError):
        return None


def checkpoint_problem(path):
    """Why a checkpoint cannot be resumed from (a short reason), or None when it looks intact."""
    path = Path(path)
    if not path.is_dir():
        return "not a folder"
    try:
        state = json.loads((path / "trainer_state.json").read_text())
        int(state["global_step"])
    except FileNotFoundError:
        return "trainer_state.json is missing"
    except (OSError, ValueError, KeyError, TypeError):
        return "trainer_state.json is unreadable"
    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (OSError, ValueError, KeyError):
            return "model.safetensors.index.json is unreadable"
    else:
        shards = ["model.safetensors"]
    for shard in shards:
        problem = safetensors_problem(path / shard)
        if problem:
            return problem
    for name in ("optimizer.pt", "scheduler.pt"):
        if not (path / name).is_file():
            return f"{name} is missing"
        if not zipfile.is_zipfile(path / name):
            return f"{name} is incomplete"
    return None


def safetensors_problem(path):
    """A safetensors file checked against its own header: the data the header promises must all be there."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > size - 8:
                return f"{path.name} is truncated"
            header = json.loads(f.read(n))
    except FileNotFoundError:
        return f"{path.name} is missing"
    except (OSError, ValueError, struct.error):
        return f"{path.name} is unreadable"
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end > size:
        return f"{path.name} is truncated"
    return None


def check_weights(path):
    """A local --model_name_or_path's safetensors files must be complete (a truncated copy fails deep inside
    loading)."""
    folder = Path(path)
    if not folder.is_dir():
        return
    for weights in sorted(folder.glob("*.safetensors")):
        problem = safetensors_problem(weights)
        if problem:
            raise UserError(f"--model_name_or_path {path}: {problem}")


def newest_intact_checkpoint(run_dir):
    """The newest checkpoint that passes `checkpoint_problem`, warning about each newer damaged one; None when
    there is none. Raises UserError when checkpoints exist but none is intact."""
    found = checkpoints(run_dir)
    damaged = []
    for _, path in reversed(found):
        problem = checkpoint_problem(path)
        if problem is None:
            for bad, why in damaged:
                print(f"warning: {bad} is damaged ({why}); resuming from {path}", flush=True)
            return str(path)
        damaged.append((path, problem))
    if damaged:
        raise UserError(f"no intact checkpoint in {run_dir}: " + "; ".join(f"{p.name}: {w}" for p, w in damaged))
    return None


def supersede_other_runs(run_dir, run_id):
    """Move checkpoints that do not belong to `run_id` into <run_dir>/superseded-<time>/ (never deleted, never
    mixed with this run's); returns the folder, or None when there were none."""
    others = [p for _, p in checkpoints(run_dir) if (run_record(p) or {}).get("run_id") != run_id]
    if not others:
        return None
    target = Path(run_dir) / time.strftime("superseded-%Y%m%d-%H%M%S")
    n = 0
    while target.exists():
        n += 1
        target = target.with_name(f"{target.name.split('.')[0]}.{n}")
    target.mkdir()
    for p in others:
        os.replace(p, target / p.name)
    return target


def rotate_own_checkpoints(run_dir, run_id, save_total_limit, best_model_checkpoint=None):
    """Delete this run's oldest checkpoints beyond save_total_limit (the newest and the best are kept); checkpoints
    of any other run, or without a run record, are never touched."""
    if not save_total_limit or save_total_limit <= 0:
        return
    own = [p for _, p in checkpoints(run_dir) if (run_record(p) or {}).get("run_id") == run_id]
    keep = set(own[-save_total_limit:])
    if best_model_checkpoint:
        keep |= {p for p in own if os.path.abspath(p) == os.path.abspath(best_model_checkpoint)}
    for p in own:
        if p not in keep:
            shutil.rmtree(p, ignore_errors=True)


def new_run_record(saved, pretrain_args):
    """This run's identity: a resumed run continues the identity of the checkpoint it resumes (`saved`, that
    checkpoint's record, or None)."""
    return {"run_id": (saved or {}).get("run_id") or uuid.uuid4().hex, "objective": pretrain_args.objective}


def check_resume_matches(resume, saved, record, model):
    """The checkpoint `resume` (its record `saved`) must come from the same configuration: objective, sequence
    length, tokenizer and model shape (a new --max_steps, learning rate schedule end or logging is fine)."""
    changes = [f"{key} {saved[key]!r} -> {record[key]!r}" for key in ("objective", "max_seq_length", "model_type",
                                                                        "tokenizer_vocab_sha")
               if key in saved and key in record and saved[key] != record[key]]
    try:
        config = json.loads(Path(resume, "config.json").read_text())
    except (OSError, ValueError):
        config = {}
    now = model.config.to_dict()
    changes += [f"{k} {config[k]!r} -> {now[k]!r}" for k in SHAPE_KEYS if k in config and k in now
                and config[k] != now[k]]
    if changes:
        raise UserError(f"--resume_from_checkpoint {resume} was saved by a run with another configuration "
                        f"({'; '.join(changes)}): resume with the same flags, or start a new run in another "
                        f"--output_dir")


SHAPE_KEYS = ("model_type", "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
              "intermediate_size", "max_position_embeddings", "d_model", "d_ff", "num_layers", "num_decoder_layers",
              "encoder_layers", "decoder_layers", "n_embd", "n_layer", "n_head")


def vocab_sha(tokenizer):
    return hashlib.sha256(json.dumps(sorted(tokenizer.get_vocab().items())).encode()).hexdigest()[:16]
