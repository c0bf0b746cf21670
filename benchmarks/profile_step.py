"""Where one online RSTG step spends its time: a TensorFlow profiler trace, read back.

  python -m benchmarks.profile_step [--dtype=bfloat16] [--batch=1] [--steps=50]
                                    [--output=step_profile.json]

Traces ``--steps`` calls of the compiled ``RSTG.step`` (reference sizes: N=14, D=512,
K=3, all_temp, 6x6x512 frames) with ``tf.profiler`` and reads the trace's XPlane
(TensorFlow's own protobuf, no TensorBoard needed). Prints per op type and per op node
the compute time per step (summed over TF's compute threads: ops on the two threads can
overlap, so the sum may exceed the wall time), then the timeline of one step: each op
of at least ``--min_us`` with its start, duration and thread, which shows the critical
path (the chain of stages) and what runs beside it.
"""

import collections
import glob
import json
import os
import tempfile
import time

from absl import flags

from rstg_tf import cli

flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"],
                  "Weights and compute dtype of the block.")
flags.DEFINE_integer("batch", 1, "Streams per step.", lower_bound=1)
flags.DEFINE_integer("steps", 50, "Traced steps.", lower_bound=2)
flags.DEFINE_integer("node_dim", 512, "Node width D (the reference's: 512).", lower_bound=1)
flags.DEFINE_float("min_us", 8.0, "Shortest op shown in the one-step timeline.")
flags.DEFINE_integer("top", 25, "Op nodes listed by time.", lower_bound=1)
flags.DEFINE_string("output", None, "Also write the figures as JSON here.")

_SKIP = ("ExecutorState::Process", "Process", "ExecutorDoneCallback", "ThreadpoolListener",
         "ReadVariableOp")


def read_trace(logdir):
    """Events of the newest trace under ``logdir``: (start_ps, duration_ps, line, name)."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    paths = sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True))
    if not paths:
        raise FileNotFoundError(f"the profiler wrote no *.xplane.pb under {logdir}")
    space = xplane_pb2.XSpace()
    with open(paths[-1], "rb") as fh:
        space.ParseFromString(fh.read())
    events = []
    for plane in space.planes:
        for line in plane.lines:
            for ev in line.events:
                events.append((line.timestamp_ns * 1000 + ev.offset_ps, ev.duration_ps,
                               line.name, plane.event_metadata[ev.metadata_id].name))
    return sorted(events)


def summarise(events, steps, step_name="<lambda>", min_us=8.0, top=25):
    """Per op type / op node ms per step on the compute threads; one step's timeline."""
    ops = [e for e in events if e[2].startswith("tf_Compute")
           and not any(e[3].startswith(s) or e[3].endswith(":" + s) for s in _SKIP)]
    by_type, by_node = collections.Counter(), collections.Counter()
    for _, dur, _, name in ops:
        node, _, kind = name.rpartition(":")
        by_type[kind or node] += dur
        by_node[name] += dur
    # The calling thread's line is named after the thread ("python", or the program).
    calls = [e for e in events if e[3] == step_name and not e[2].startswith("tf_")]
    middle = calls[len(calls) // 2] if calls else None
    timeline = []
    if middle is not None:
        start, dur = middle[0], middle[1]
        threads = {}
        for t, d, line, name in ops:
            if start <= t <= start + dur and d >= min_us * 1e6:
                thread = threads.setdefault(line, len(threads))
                timeline.append({"start_us": round((t - start) / 1e6, 1),
                                 "us": round(d / 1e6, 1), "thread": thread, "op": name})

    def per_step(counter, n=None):
        return {k: round(v / 1e9 / steps, 4) for k, v in counter.most_common(n)}

    return {"ms_per_step_by_type": per_step(by_type),
            "ms_per_step_by_node": per_step(by_node, top),
            "compute_ms_per_step": round(sum(by_type.values()) / 1e9 / steps, 3),
            "one_step_wall_ms": round(middle[1] / 1e9, 3) if middle else None,
            "one_step_timeline": timeline}


def profile_step(dtype="float32", batch=1, steps=50, node_dim=512, min_us=8.0, top=25):
    import tensorflow as tf

    from benchmarks.block_speed import H, W, stream_block
    from rstg_tf.config import RSTGConfig

    block = stream_block(RSTGConfig(node_dim=node_dim, message_dim=node_dim), 512, dtype)
    frame = tf.cast(tf.random.normal((batch, H, W, 512)), dtype)
    state = block.initial_state(batch)
    step = tf.function(lambda f, s: block.step(f, s))
    for _ in range(10):
        _, state = step(frame, state)
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        start = time.perf_counter()
        for _ in range(steps):
            y, state = step(frame, state)
            y.numpy()
        wall = (time.perf_counter() - start) / steps
        tf.profiler.experimental.stop()
        out = summarise(read_trace(logdir), steps, min_us=min_us, top=top)
    out.update({"dtype": dtype, "batch": batch, "steps": steps, "node_dim": node_dim,
                "wall_ms_per_step_traced": round(1e3 * wall, 3)})
    return out


def main(argv):
    del argv
    f = flags.FLAGS
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    out = profile_step(f.dtype, f.batch, f.steps, f.node_dim, f.min_us, f.top)
    print(f"{f.dtype} block, batch {f.batch}, {f.steps} traced steps: wall "
          f"{out['wall_ms_per_step_traced']:.2f} ms per step (with the profiler on), "
          f"op compute {out['compute_ms_per_step']:.2f} ms per step over all threads")
    print("\nms per step by op type:")
    for k, v in out["ms_per_step_by_type"].items():
        print(f"  {v:8.3f}  {k}")
    print(f"\nms per step, top {f.top} op nodes:")
    for k, v in out["ms_per_step_by_node"].items():
        print(f"  {v:8.3f}  {k}")
    print(f"\none step ({out['one_step_wall_ms']} ms), ops >= {f.min_us} us: "
          "start us, duration us, thread, op")
    for e in out["one_step_timeline"]:
        print(f"  {e['start_us']:9.1f} {e['us']:8.1f}  t{e['thread']}  {e['op']}")
    if f.output:
        from rstg_tf.data.atomic import atomic_write_text
        atomic_write_text(f.output, json.dumps(out, indent=1) + "\n")
        print(f"wrote {f.output}")


if __name__ == "__main__":
    cli.run(main)
