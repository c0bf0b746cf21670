"""Runs every command of README.md, in order, at smoke size.

  bash tools/readme_check.sh        # a fresh clone of HEAD, a throwaway venv, then this

The commands are read from README.md's ```bash blocks (and its ```python block), so the
check and the README cannot drift apart: a command whose program has no smoke rule below
stops the check, naming it. Each command runs as written, with the smoke rule's flags
appended (absl: a later flag overrides the flagfile's and the README's) and the README's
placeholder paths replaced (``SUBSTITUTE``): tiny models, a few videos, one or two steps.
The pip commands run as written (into the venv of readme_check.sh). The test command runs
one test file (the whole suite is CI's job). ``export.serve`` runs in the background for the
client after it. Something-Something's data and the authors' checkpoint do not exist
here: a tiny SSv1 layout (tests/smth_fixtures.py) and a synthetic TF1 checkpoint
(tests/test_reference_ckpt.py's) stand in at the README's paths.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKPOINT = "runs/readme_check/model_5000.ckpt"
# README placeholder -> what stands in for it here
SUBSTITUTE = {"path/to/reference/model.ckpt": CHECKPOINT,
              # the probes read what the quick table made; here the smoke table made it
              "syncmnist3_quick": "syncmnist3_smoke", "table3_quick": "table3_smoke",
              "backbone32_60000x2_cosine0.002": "backbone8_256x1"}
SMTH_TINY = ["--backbone=i3d", "--width=4", "--num_classes=4", "--num_frames=4",
             "--crop_size=48", "--short_side=52", "--dense_crops=3", "--node_dim=8",
             "--message_dim=8", "--num_iterations=1", "--batch_size=2", "--epochs=1",
             "--steps_per_epoch=1", "--verbose=0"]
TINY_MODEL = ["--num_filters=8", "--node_dim=8", "--message_dim=8", "--hidden=8"]
# program (python -m ...) -> flags appended at smoke size
SMOKE = {
    "train.table": ["--budget=smoke"],
    "train.make_syncmnist": ["--num_videos=24", "--num_shards=4", "--workers=1"],
    "train.pretrain": ["--num_filters=8", "--num_images=64", "--epochs=1"],
    "train": [*TINY_MODEL, "--epochs=1", "--steps_per_epoch=2", "--batch_size=2",
              "--verbose=2"],
    "train.evaluate": ["--batch_size=8"],
    "train.inspect": [],
    "train.curves": [],
    "experiments.sync_pair.probe": ["--num_filters=8", "--epochs=1", "--steps_per_epoch=2",
                                    "--batch_size=4", "--max_videos=24", "--verbose=0"],
    "experiments.sync_pair.oracle": ["--train_videos=16", "--val_videos=8", "--test_videos=8",
                                     "--epochs=1", "--steps_per_epoch=2", "--batch_size=4",
                                     "--node_dim=8", "--message_dim=8", "--mlp_width=8",
                                     "--verbose=0"],
    "train.convert_smth": ["--quiet"],
    "train.smth": SMTH_TINY,
    "train.evaluate_smth": ["--batch_size=4"],
    "train.import_reference_ckpt": ["--backbone=i3d", "--num_classes=5", "--num_frames=4",
                                    "--crop_size=64", "--width=4", "--rstg_stages=res3",
                                    "--rstg_final", "--node_dim=8", "--message_dim=8"],
    "export": [],
    "export.serve": [],
    "export.client": [],
}

# (a flag the command has, a flag appended when it does): a smoke set too small for the
# README's holdout; the in-memory table's own work dir (the shard table's is the default)
PER_COMMAND = {
    "train.convert_smth": [("--split=train", "--holdout_videos=2")],
    "train.table": [("--in_memory", "--work_dir=runs/table3_smoke_in_memory")],
}


def readme_commands(path: str):
    """("bash", command) for each command line of the ```bash blocks (continuations
    joined, comments dropped) and ("python", code) for each ```python block."""
    commands, block, lines = [], None, open(path).read().splitlines()
    pending = ""
    for line in lines:
        fence = re.match(r"^```(\w*)\s*$", line)
        if fence:
            if block is None:
                block, code = fence[1] or "text", []
            else:
                if block == "python":
                    commands.append(("python", "\n".join(code)))
                block = None
            continue
        if block == "python":
            code.append(line)
        elif block == "bash":
            text = re.sub(r"(^|\s)#.*$", "", line).rstrip()
            if text.endswith("\\"):
                pending += text[:-1] + " "
                continue
            text = (pending + text).strip()
            pending = ""
            if text:
                commands.append(("bash", text))
    return commands


def _program(words):
    """(environment assignments, module after ``python -m`` or None, index of the module)."""
    env = {}
    while words and re.match(r"^[A-Z_]+=", words[0]):
        key, value = words.pop(0).split("=", 1)
        env[key] = value
    if len(words) >= 3 and words[0] in ("python", "python3") and words[1] == "-m":
        return env, words[2], words
    return env, None, words


def smoke_part(part: str):
    """One ``&&``-part of a README command at smoke size: (env, argv, background?)."""
    for placeholder, stand_in in SUBSTITUTE.items():
        part = part.replace(placeholder, stand_in)
    env, module, words = _program(shlex.split(part))
    if words[:2] == ["pip", "install"]:
        return env, [sys.executable, "-m", *words], False
    if module == "pytest":
        return env, [sys.executable, "-m", "pytest", "-q", "-n", "2", "tests/test_graph.py"], False
    if module is None:
        raise SystemExit(f"readme_check: no rule for the README command {part!r}")
    if module not in SMOKE:
        raise SystemExit(f"readme_check: README runs python -m {module}, which has no smoke "
                         "rule: add one to SMOKE in tools/readme_check.py")
    argv = [sys.executable, "-m", module, *words[3:], *SMOKE[module]]
    argv += [flag for when, flag in PER_COMMAND.get(module, ()) if when in argv]
    return env, argv, module == "export.serve"


def _wait_for_port(port: int, seconds: float = 120):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise SystemExit(f"readme_check: the dev server did not open port {port}")


def _stand_ins():
    """The Something-Something layout and the authors' checkpoint, at the README's paths."""
    sys.path.insert(0, ROOT)
    from tests.smth_fixtures import make_layout
    layout = make_layout(os.path.join(ROOT, "smth", "layout"))
    names = {"labels_csv": "something-something-v1-labels.csv",
             "split_csv": "something-something-v1-train.csv"}
    for key, name in names.items():
        shutil.copy(layout[key], os.path.join(ROOT, "smth", name))
    shutil.copy(layout["split_csv"], os.path.join(ROOT, "smth",
                                                  "something-something-v1-validation.csv"))
    os.rename(layout["frames_dir"], os.path.join(ROOT, "smth", "20bn-something-something-v1"))
    from tests.test_reference_ckpt import I3D, _spec, _values, _write
    os.makedirs(os.path.dirname(os.path.join(ROOT, CHECKPOINT)), exist_ok=True)
    values = {f"tower/resnet_i3d/{k}": v for k, v in _values(_spec(I3D)).items()}
    _write(os.path.join(ROOT, CHECKPOINT), values)


def main():
    os.chdir(ROOT)
    commands = readme_commands("README.md")
    _stand_ins()
    background, start = [], time.monotonic()
    try:
        for number, (kind, command) in enumerate(commands, 1):
            began = time.monotonic()
            if kind == "python":
                print(f"[{number}/{len(commands)}] README python block", flush=True)
                result = subprocess.run([sys.executable, "-c", command])
                if result.returncode:
                    raise SystemExit("readme_check: the README's python block failed")
                continue
            for part in command.split("&&"):
                env, argv, in_background = smoke_part(part.strip())
                shown = " ".join(shlex.quote(a) for a in argv[1:])
                print(f"[{number}/{len(commands)}] {' '.join(f'{k}={v}' for k, v in env.items())}"
                      f" python {shown}", flush=True)
                full_env = {**os.environ, **env}
                if in_background:
                    background.append(subprocess.Popen(argv, env=full_env))
                    port = next(int(a.split("=", 1)[1]) for a in argv if a.startswith("--port="))
                    _wait_for_port(port)
                    continue
                result = subprocess.run(argv, env=full_env)
                if result.returncode:
                    raise SystemExit(f"readme_check: README command {number} failed (exit "
                                     f"{result.returncode}): {part.strip()}")
            print(f"    ok in {time.monotonic() - began:.0f} s", flush=True)
    finally:
        for process in background:
            process.send_signal(signal.SIGINT)
            process.wait(30)
    print(f"readme_check: all {len(commands)} README commands ran at smoke size in "
          f"{(time.monotonic() - start) / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
