"""`run_pretrain.py` / `hf-pretrain`: the run_mlm.py-style pretraining command line.

parse arguments (what the flags given mean, checked before any work) -> the run's steps (steps.py: output
directory, text, tokenizer, model, datasets, collator, trainer, training and evaluation, saving, summary), for
any objective in the registry (registry.py). User mistakes end as one `error:` line and exit status 2; nothing
already in the output directory is overwritten unless --overwrite_output_dir is given.
"""
import sys

from transformers import HfArgumentParser
from transformers.trainer_utils import SchedulerType

from . import steps
from .args import RECIPES, DataTrainingArguments, ModelArguments, PretrainArguments, PretrainTrainingArguments
from .callbacks import TIME_SCHEDULES
from .entry import asked_for, complement_help, is_config_file, parse_dataclasses, run_command
from .errors import UserError
from .registry import get_objective
from .mixing import resolve_mixture_objective, run_objectives

ARG_CLASSES = (ModelArguments, DataTrainingArguments, PretrainArguments, PretrainTrainingArguments)


def make_parser():
    return complement_help(HfArgumentParser(ARG_CLASSES))


def parse_args(argv=None):
    """The four pretraining argument dataclasses, with what the flags given (not their defaults) mean:
    - neither --do_train nor --do_eval: both; one of them alone: that one (`--do_eval false`: train only, `--do_train
      false`: evaluate only); a run that would do neither is an error. TrainingArguments turns do_eval on by itself
      for --eval_strategy steps/epoch: that alone does not mean "evaluate only".
    - --num_train_epochs without --max_steps: the epochs decide (the default job's 600 steps do not apply);
    - --mixture of objectives without --objective: the objective is the mixture's (its first component)."""
    argv = expand_recipe(sys.argv[1:] if argv is None else list(argv))
    model_args, data_args, pretrain_args, training_args = parse_dataclasses(make_parser(), argv)
    if pretrain_args.recipe and is_config_file(argv):
        raise UserError(f"{argv[0]}: 'recipe' works on the command line; in a config file write its flags out: "
                        f"{' '.join(RECIPES[pretrain_args.recipe])}")
    asked = lambda flag: asked_for(argv, flag)  # noqa: E731
    if not asked("do_train") and not asked("do_eval"):
        training_args.do_train = training_args.do_eval = True
    elif asked("do_eval") and not asked("do_train"):
        training_args.do_train = not training_args.do_eval
    elif asked("do_train") and not asked("do_eval") and not training_args.do_train:
        training_args.do_eval = True
    if not training_args.do_train and not training_args.do_eval:
        raise UserError("nothing to do: --do_train and --do_eval are both false")
    if training_args.max_steps == 0 or training_args.max_steps < -1:
        raise UserError(f"--max_steps {training_args.max_steps}: give a positive number of optimizer steps, or -1 "
                        f"to train for --num_train_epochs")
    if asked("num_train_epochs") and not asked("max_steps"):
        training_args.max_steps = -1
    if training_args.max_steps < 0 and training_args.num_train_epochs <= 0:
        raise UserError(f"--num_train_epochs {training_args.num_train_epochs}: must be > 0 when --max_steps is not "
                        f"given")
    mixture = resolve_mixture_objective(pretrain_args, asked("objective"))
    if not asked("use_fused_loss"):  # the default follows the objective, which a mixture may have decided
        pretrain_args.use_fused_loss = pretrain_args.default_use_fused_loss()
    groups = {g for o in run_objectives(pretrain_args, mixture) for g in o.option_groups}
    pretrain_args.check_groups_used(groups | ({"mixture"} if mixture and mixture.kind == "files" else set()), asked)
    check_config_overrides(model_args.config_overrides)
    check_flag_combinations(data_args, pretrain_args, training_args)
    if training_args.push_to_hub and not training_args.hub_model_id:
        raise UserError("--push_to_hub needs --hub_model_id (e.g. your-name/my-bert), with --hub_dry_run too: it "
                        "names the repository in the model card")
    return model_args, data_args, pretrain_args, training_args


def expand_recipe(argv):
    """argv with a --recipe's flags placed before the user's (so the user's own values win)."""
    if is_config_file(argv):  # parse_args refuses a recipe there once the file is read safely
        return argv
    names = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--recipe"]
    names += [a.split("=", 1)[1] for a in argv if a.startswith("--recipe=")]
    for name in names:
        if name not in RECIPES:
            raise UserError(f"--recipe {name}: unknown; known: {', '.join(RECIPES)}")
    return [flag for name in names for flag in RECIPES[name]] + argv


def check_flag_combinations(data_args, pretrain_args, training_args):
    """--unpad needs --packing documents; a masking-rate schedule needs batches collated in the main process;
    distillation flags need a teacher; objectives that read the whole training set cannot stream."""
    if pretrain_args.teacher_model_name_or_path is None and (pretrain_args.distill_init_student
                                                             or pretrain_args.distill_cosine):
        raise UserError("--distill_init_student and --distill_cosine need --teacher_model_name_or_path")
    if data_args.streaming and not get_objective(pretrain_args.objective).can_stream:
        raise UserError(f"--objective {pretrain_args.objective} draws from the whole training set (word2vec: its "
                        "token counts; nsp: random segments); it cannot stream")
    if pretrain_args.unpad and data_args.packing != "documents":
        raise UserError("--unpad runs packed documents without padding: it needs --packing documents")
    if not data_args.mlm_schedule.constant and training_args.dataloader_num_workers > 0:
        raise UserError(f"--mlm_probability {data_args.mlm_schedule.spec} is a schedule, which follows the "
                        "optimizer steps by counting batches in the main process: use --dataloader_num_workers 0")
    if pretrain_args.max_train_minutes is not None:
        kind = SchedulerType(training_args.lr_scheduler_type).value
        if kind not in TIME_SCHEDULES:
            raise UserError(f"--max_train_minutes runs the schedule on time: --lr_scheduler_type {kind} is not one "
                            f"of {', '.join(TIME_SCHEDULES)}")
        if training_args.resume_from_checkpoint is not None:
            raise UserError("--max_train_minutes cannot resume: the time spent before the checkpoint is not known")
        if not training_args.do_train:
            raise UserError("--max_train_minutes limits training: it needs --do_train")


def check_config_overrides(spec):
    """--config_overrides must be key=value pairs; a size, count or length cannot be zero or negative."""
    if not spec:
        return
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--config_overrides {spec!r}: {part!r} is not key=value (e.g. "
                            f"'hidden_size=256,num_hidden_layers=4')")
        try:
            number = float(value)
        except ValueError:
            continue
        if number <= 0 and not key.strip().endswith(("_id", "_eps", "_prob", "_dropout", "dropout")) \
                and key.strip().endswith(("size", "layers", "heads", "dim", "_ff", "d_kv", "embeddings", "n_embd",
                                          "n_layer", "n_head", "n_inner", "n_positions", "d_model")):
            raise UserError(f"--config_overrides: {key.strip()}={value} must be positive")


def run(model_args, data_args, pretrain_args, training_args, owned=None):
    """One pretraining run: the steps of steps.STEPS in order; returns the train and eval metrics."""
    state = steps.Run(model_args, data_args, pretrain_args, training_args, owned=owned)
    for step in steps.STEPS:
        step(state)
    return state.results


def main(argv=None):
    return run_command(parse_args, run, argv)
