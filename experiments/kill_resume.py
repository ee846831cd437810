"""kill -9 a pretraining run mid-way, resume it, and compare with an uninterrupted run, side by side.

    python experiments/kill_resume.py [--max_steps 200] [--save_steps 50] [--workdir /tmp/hfpx-kill-resume]

Run A trains the default job (sample corpus, tiny hfpx-bert) without interruption. Run B is the same job with A's
tokenizer (tokenizer training may break frequency ties differently from run to run), killed with SIGKILL once a
checkpoint exists and a few more steps have run (so the kill lands between checkpoints), then resumed with
`--resume_from_checkpoint True`. Prints both loss trajectories and whether the final weights are bitwise equal.
Exit status 0 when trajectories and weights match exactly.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from safetensors.torch import load_file

RUN = [sys.executable, str(Path(__file__).resolve().parent.parent / "run_pretrain.py")]


def job(out, args, extra=()):
    return [*RUN, "--output_dir", str(out), "--max_steps", str(args.max_steps), "--save_steps", str(args.save_steps),
            "--logging_steps", "10", "--do_train", "--disable_tqdm", "true", "--save_total_limit", "3", *extra]


def trajectory(out):
    state = json.loads((Path(out) / "trainer_state.json").read_text())
    return {h["step"]: h["loss"] for h in state["log_history"] if "loss" in h}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--max_steps", type=int, default=200)
    p.add_argument("--save_steps", type=int, default=50)
    p.add_argument("--workdir", default="/tmp/hfpx-kill-resume")
    args = p.parse_args()
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")

    a, b = work / "uninterrupted", work / "killed"
    subprocess.run(job(a, args), check=True, env=env, stdout=subprocess.DEVNULL)
    tok = ("--tokenizer_name", str(a / "tokenizer"))
    subprocess.run(job(a.with_name("uninterrupted2"), args, tok), check=True, env=env, stdout=subprocess.DEVNULL)
    a = a.with_name("uninterrupted2")  # the reference run, with the shared tokenizer

    proc = subprocess.Popen(job(b, args, tok), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    first = b / f"checkpoint-{args.save_steps}"
    while not first.exists():
        if proc.poll() is not None:
            sys.exit("run B ended before its first checkpoint")
        time.sleep(0.05)
    time.sleep(2.0)  # a few more steps: the kill lands between checkpoints
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = sorted(int(c.name.split("-")[1]) for c in b.glob("checkpoint-*"))
    print(f"killed run B with SIGKILL; checkpoints on disk: {saved}")
    subprocess.run(job(b, args, (*tok, "--resume_from_checkpoint", "True")), check=True, env=env,
                   stdout=subprocess.DEVNULL)

    ta, tb = trajectory(a), trajectory(b)
    print(f"\n{'step':>6} {'uninterrupted':>14} {'killed+resumed':>15}  same")
    for step in sorted(set(ta) | set(tb)):
        la, lb = ta.get(step), tb.get(step)
        print(f"{step:>6} {la if la is not None else '-':>14} {lb if lb is not None else '-':>15}  "
              f"{'yes' if la == lb else 'NO'}")
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    same_weights = wa.keys() == wb.keys() and all(wa[k].equal(wb[k]) for k in wa)
    print(f"\nfinal weights bitwise equal: {same_weights}")
    sys.exit(0 if same_weights and ta == tb else 1)


if __name__ == "__main__":
    main()
