"""RSTG: the Recurrent Space-time Graph block (docs/reference_code.md §1-§6), top to bottom.

    features [B, T, H, W, C]
      -> nodes: area-pool each scale's cells          [T, B, N, C]   (time-major inside)
      -> batch norm (SyncMNIST), projection in, norm  [T, B, N, D]
      -> K iterations of: time stage, space stage     (per the schedule)
      -> final time stage                             [T, B, N, D]
      -> projection out (optional)
      -> read-out: mean_time / last_step -> [B, D'];  map -> [B, T, H, W, C]

Time stages carry one state per iteration k (iteration k at t sees iteration k at t-1),
so the clip can be computed in two orders with equal results: ``layerwise`` (the
reference's: for each k, the time stage over the whole clip, then the space stage on all
frames at once) or ``framewise`` (a compiled loop over frames calling the same per-frame
step that the online mode ``step`` uses).
"""

from __future__ import annotations

import keras
from keras import ops

from rstg_tf.config import RSTGConfig
from rstg_tf.graph import build_graph
from rstg_tf.layers.loops import scan
from rstg_tf.layers.node_lstm import NodeLSTM
from rstg_tf.layers.norm import apply_norm, make_norm
from rstg_tf.layers.space_stage import SpaceStage

# Per schedule: (internal time stage before each space stage?, space stage?, final stage).
_SCHEDULES = {
    "all_temp": (True, True, "time"),
    "one_temp": (False, True, "time"),
    "space_only": (False, True, "mean"),
    "time_only": (True, False, "time"),
    "homogeneous": (True, True, "time"),
}


@keras.saving.register_keras_serializable(package="rstg_tf")
class RSTG(keras.layers.Layer):
    """Recurrent Space-time Graph block.

    Shapes:
      call:  features [B, T, H, W, C] -> [B, D'] (mean_time, last_step) or
             [B, T, H, W, C] (map: residual on the input).
      step:  frame [B, H, W, C], state dict -> (per-frame output, new state dict).

    D' is the node dim, or C with a projection out.

    Args:
      config: an RSTGConfig (or its dict, as stored by ``get_config``); ``PRESETS`` holds
        the paper's settings (``preset("syncmnist")``, ``preset("ssv1")``).

    Call arguments:
      features: backbone features [B, T, H, W, C] (static H, W, C).
      training: Python bool, for batch norms.

    Returns:
      The read-out: [B, D'] (mean_time, last_step) or the features plus the graph's map
      [B, T, H, W, C] (map).

    Online mode: ``initial_state(batch_size)`` and ``step(frame, state)`` (below) give, frame
    by frame, what ``call`` gives on the clip.

    Example:

    >>> block = RSTG(RSTGConfig(node_dim=16, message_dim=16))
    >>> features = np.random.rand(2, 10, 6, 6, 32).astype("float32")
    >>> tuple(block(features).shape)                                # RSTG-to-vec
    (2, 16)
    >>> state = block.initial_state(batch_size=2)
    >>> for t in range(10):
    ...     out, state = block.step(features[:, t], state)
    >>> bool(np.allclose(out, block(features), atol=1e-4))  # same as the clip
    True
    """

    def __init__(self, config=None, **kwargs):
        super().__init__(**kwargs)
        if config is None:
            config = RSTGConfig()
        self.config = config if isinstance(config, RSTGConfig) else RSTGConfig.from_dict(config)
        c = self.config
        self.graph = build_graph(c.frame_size, c.num_scales, c.position_map_size)
        self.time_inside, self.has_space, self.final = _SCHEDULES[c.schedule]
        self.homogeneous = c.schedule == "homogeneous"
        self.input_bn = (keras.layers.BatchNormalization(name="input_bn")
                         if c.input_batch_norm else None)
        # Time-major nodes [T, B, N, D]: the "graph" scope normalises a clip's nodes together.
        self.input_norm = make_norm(c.norm, "input_norm", axes=(
            (-4, -2, -1) if c.layer_norm_scope == "graph" else None))
        self.space = SpaceStage(c, name="space") if (self.has_space or self.homogeneous) else None
        lstm = not self.homogeneous
        self.time_intern = NodeLSTM(c.node_dim, init=c.lstm_init, name="time_intern") if (
            lstm and self.time_inside) else None
        self.time_final = NodeLSTM(c.node_dim, init=c.lstm_init, name="time_final") if (
            lstm and self.final == "time") else None

    # -- build ---------------------------------------------------------------------------
    def build(self, input_shape):
        c = self.config
        if len(input_shape) != 5:
            raise ValueError("RSTG expects features of rank 5 [batch, time, height, width, "
                             f"channels]; got shape {tuple(input_shape)}.")
        _, _, h, w, ch = input_shape
        if h is None or w is None or ch is None:
            raise ValueError("RSTG needs static height, width and channels; got shape "
                             f"{tuple(input_shape)}.")
        grid = self.graph.grids[0]
        if h < grid or w < grid:
            raise ValueError(f"RSTG with {c.num_scales} scales needs a feature map of at least "
                             f"{grid}x{grid}; got {h}x{w} (shape {tuple(input_shape)}).")
        self.map_size, self.in_channels = (int(h), int(w)), int(ch)
        self.pooling = self.graph.pooling_matrix(h, w).astype("float32")
        n, d = self.graph.num_nodes, c.node_dim
        if self.input_bn is not None:
            self.input_bn.build((None, None, n, ch))
        self.project_in = None
        if ch != d:
            self.project_in = keras.layers.Dense(d, name="project_in")
            self.project_in.build((None, None, n, ch))
        if self.input_norm is not None:
            self.input_norm.build((None, None, n, d))
        for lstm in (self.time_intern, self.time_final):
            if lstm is not None:
                lstm.build((None, None, n, d))
        if self.space is not None:
            self.space.build((None, n, d))
        project_out = c.project_out
        if project_out is None:
            project_out = c.readout == "map" and self.project_in is not None
        if c.readout == "map" and not project_out and d != ch:
            raise ValueError(f"readout='map' adds the block's output to its input, so it needs "
                             f"node_dim == channels or project_out; got node_dim={d}, "
                             f"channels={ch}, project_out=False.")
        self.project_out = None
        self.out_dim = d
        if project_out:
            self.project_out = keras.layers.Dense(ch, name="project_out")
            self.project_out.build((None, None, n, d))
            self.out_dim = ch
        self.map_norm = None
        if c.readout == "map":
            self.unpooling = self.graph.unpooling_matrix(h, w).astype("float32")
            self.map_norm = make_norm(c.map_norm, "map_norm", gamma_initializer="zeros",
                                      axes=c.norm_axes(5))
            self.map_norm.build((None, None, h, w, ch))
        self.input_spec = keras.InputSpec(ndim=5, axes={2: h, 3: w, 4: ch})

    # -- pieces shared by the clip and the online mode ------------------------------------
    def encode(self, features, training=None):
        """features [B, T, H, W, C] -> time-major nodes [T, B, N, D]."""
        b, t = ops.shape(features)[0], ops.shape(features)[1]
        flat = ops.reshape(features, (b, t, -1, self.in_channels))
        pool = ops.convert_to_tensor(self.pooling, dtype=flat.dtype)
        # One 2-D matmul [N, K] x [K, B*T*C], then a transpose of the small result: TF's
        # einsum here costs 0.3-0.6 ms at batch 1, at the start of the online step.
        nodes = ops.transpose(ops.tensordot(pool, flat, axes=[[1], [2]]), (2, 1, 0, 3))
        if self.input_bn is not None:
            nodes = self.input_bn(nodes, training=training)
        if self.project_in is not None:
            nodes = self.project_in(nodes)
        return apply_norm(self.input_norm, nodes, training)

    def _stages(self):
        """The time stages in order: (state key, kind); iteration k, then the final one."""
        k = self.config.num_iterations
        keys = [f"t{i}" for i in range(k)] if self.time_inside else []
        if self.final == "time":
            keys.append("final")
        return keys

    def _time_step(self, key, x, state, training, z_h=None):
        """One time stage on one frame: x [B, N, D] -> (y, updated state entries)."""
        if self.homogeneous:
            y = self.space.temporal(state[f"{key}_h"], x, training)
            return y, {f"{key}_h": y}
        lstm = self.time_final if key == "final" else self.time_intern
        y, (h, cst) = lstm.step(x, (state[f"{key}_h"], state[f"{key}_c"]), z_h)
        return y, {f"{key}_h": h, f"{key}_c": cst}

    def _recurrent_parts(self, state):
        """The K iterations' LSTM state terms h_k U, which depend only on the state and
        share ``time_intern``'s U: one matmul over the K*N nodes (U read once) -> K
        tensors [B, N, 4D], or Nones where there is no such LSTM."""
        k = self.config.num_iterations
        if not self.time_inside or self.homogeneous or k < 2:
            return [None] * k
        n = self.graph.num_nodes
        hu = self.time_intern.recurrent(
            ops.concatenate([state[f"t{i}_h"] for i in range(k)], axis=1))
        return [hu[:, i * n:(i + 1) * n] for i in range(k)]

    def _time_sequence(self, key, x, training):
        """One time stage over a whole clip from the zero state: x [T, B, N, D] -> y."""
        zeros = self._node_state(ops.shape(x)[1], x.dtype)
        if self.homogeneous:
            return scan(lambda h, x_t: (self.space.temporal(h, x_t, training),) * 2,
                        zeros[f"{key}_h"], x)[1]
        lstm = self.time_final if key == "final" else self.time_intern
        return lstm.sequence(x, (zeros[f"{key}_h"], zeros[f"{key}_c"]))[0]

    def _space(self, x, training):
        """Space stage on every frame of x [..., N, D] at once."""
        shape = ops.shape(x)
        flat = ops.reshape(x, (-1,) + tuple(x.shape[-2:]))
        out = self.space(flat, training=training)
        return ops.reshape(out, tuple(shape[:-1]) + (out.shape[-1],))

    def _finish(self, nodes):
        return nodes if self.project_out is None else self.project_out(nodes)

    # -- clip mode -----------------------------------------------------------------------
    def _layerwise(self, x, training):
        for i in range(self.config.num_iterations):
            if self.time_inside:
                x = self._time_sequence(f"t{i}", x, training)
            if self.has_space:
                x = self._space(x, training)
        if self.final == "time":
            return self._time_sequence("final", x, training)
        return ops.broadcast_to(ops.mean(x, axis=0, keepdims=True), ops.shape(x))

    def _frame_nodes(self, x, state, training):
        """All stages for one frame: x [B, N, D] -> (final nodes, new state)."""
        new = {}
        recurrent = self._recurrent_parts(state)
        for i in range(self.config.num_iterations):
            if self.time_inside:
                x, upd = self._time_step(f"t{i}", x, state, training, recurrent[i])
                new.update(upd)
            if self.has_space:
                x = self._space(x, training)
        if self.final == "time":
            x, upd = self._time_step("final", x, state, training)
            new.update(upd)
        return x, new

    def _framewise(self, x, training):
        if self.final == "mean":  # No recurrence: each frame alone, then the time mean.
            ys = scan(lambda s, x_t: (s, self._frame_nodes(x_t, s, training)[0]), {}, x)[1]
            return ops.broadcast_to(ops.mean(ys, axis=0, keepdims=True), ops.shape(ys))
        state = self._node_state(ops.shape(x)[1], x.dtype)
        return scan(lambda s, x_t: self._frame_nodes(x_t, s, training)[::-1], state, x)[1]

    def call(self, features, training=None):
        x = self.encode(features, training)
        run = self._layerwise if self.config.clip_mode == "layerwise" else self._framewise
        y = self._finish(run(x, training))                       # [T, B, N, D']
        readout = self.config.readout
        if readout == "mean_time":
            return ops.sum(ops.mean(y, axis=0), axis=1)
        if readout == "last_step":
            return ops.sum(y[-1], axis=1)
        return self._to_map(ops.transpose(y, (1, 0, 2, 3)), features, training)

    def _to_map(self, nodes, features, training):
        """nodes [..., N, C] -> residual maps [..., H, W, C]."""
        unpool = ops.convert_to_tensor(self.unpooling, dtype=nodes.dtype)
        maps = ops.einsum("kn,...nc->...kc", unpool, nodes)
        maps = ops.reshape(maps, tuple(ops.shape(nodes)[:-2]) + self.map_size + (self.out_dim,))
        return features + ops.cast(apply_norm(self.map_norm, maps, training), features.dtype)

    # -- online mode ---------------------------------------------------------------------
    def _node_state(self, batch_size, dtype):
        n, d = self.graph.num_nodes, self.config.node_dim
        state = {}
        for key in self._stages():
            state[f"{key}_h"] = ops.zeros((batch_size, n, d), dtype)
            if not self.homogeneous:
                state[f"{key}_c"] = ops.zeros((batch_size, n, d), dtype)
        return state

    def initial_state(self, batch_size, dtype=None):
        """Zero state for ``step``: a dict of tensors (one LSTM state per iteration plus
        the final one; the running sum and frame count for the mean_time read-out)."""
        dtype = dtype or self.compute_dtype
        state = self._node_state(batch_size, dtype)
        if self.config.readout == "mean_time":
            state["readout_sum"] = ops.zeros((batch_size, self.out_dim), dtype)
            state["num_frames"] = ops.zeros((batch_size, 1), dtype)
        return state

    def step(self, frame, state, training=False):
        """Online mode: one frame [B, H, W, C] and the state -> (output, new state).

        The output is the read-out so far: the running mean over frames of the node sum
        (mean_time), this frame's node sum (last_step), or this frame's map (map). After
        T steps it equals ``call`` on the clip.
        """
        if not self.config.has_time_recurrence:
            raise ValueError(f"schedule {self.config.schedule!r} has no time recurrence, "
                             "so it has no online mode; use one of "
                             "['all_temp', 'one_temp', 'time_only', 'homogeneous'].")
        c = self.config
        if c.layer_norm_scope == "graph" and (
                c.norm == "layer" or (c.readout == "map" and c.map_norm == "layer")):
            raise ValueError("layer_norm_scope='graph' normalises over the whole clip (the "
                             "input nodes, the output map), so it has no online mode; use "
                             "'node'.")
        if not self.built:
            self.build((None, None) + tuple(frame.shape[1:]))
        if len(frame.shape) != 4 or tuple(frame.shape[1:]) != self.map_size + (self.in_channels,):
            raise ValueError(f"RSTG.step expects a frame [batch, {self.map_size[0]}, "
                             f"{self.map_size[1]}, {self.in_channels}]; got {tuple(frame.shape)}.")
        frame = ops.cast(frame, self.compute_dtype)
        x = self.encode(frame[:, None], training)[0]
        y, new = self._frame_nodes(x, state, training)
        y = self._finish(y)
        readout = self.config.readout
        if readout == "mean_time":
            new["readout_sum"] = state["readout_sum"] + ops.sum(y, axis=1)
            new["num_frames"] = state["num_frames"] + 1
            return new["readout_sum"] / new["num_frames"], new
        if readout == "last_step":
            return ops.sum(y, axis=1), new
        return self._to_map(y, frame, training), new

    def compute_output_shape(self, input_shape):
        if self.config.readout == "map":
            return tuple(input_shape)
        out = self.config.node_dim
        if self.config.project_out:
            out = input_shape[-1]
        return (input_shape[0], out)

    def get_config(self):
        return {**super().get_config(), "config": self.config.to_dict()}
