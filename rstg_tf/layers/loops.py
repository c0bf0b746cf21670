"""A ``scan`` over the leading axis for any Keras backend.

``keras.ops.scan`` on the TensorFlow backend stacks outputs with the carry's structure
and shapes (its ``ys`` must look like the carry), which rules out a frame loop whose
carry is the RSTG state and whose output is one frame's result, or none at all. On
TensorFlow we therefore run ``tf.while_loop`` with TensorArrays ourselves (constant
memory in T at inference, differentiable); on JAX ``keras.ops.scan`` is ``lax.scan``,
which takes any structure.
"""

from __future__ import annotations

import keras
from keras import ops, tree


def scan(fn, init, xs):
    """Runs ``carry, y = fn(carry, x)`` over ``xs``'s leading axis.

    Args:
      fn: (carry, x) -> (carry, y); y may be any nested structure of tensors, or ().
      init: initial carry (nested structure of tensors).
      xs: tensor or nested structure of tensors with a common leading (time) axis.

    Returns:
      (final carry, ys stacked along a new leading axis).
    """
    if keras.backend.backend() != "tensorflow":
        return ops.scan(fn, init, xs)
    import tensorflow as tf  # The TF-only branch; the module stays backend-neutral.

    xs_flat = [tf.convert_to_tensor(x) for x in tree.flatten(xs)]
    n = xs_flat[0].shape[0]
    if n is None:
        n = tf.shape(xs_flat[0])[0]
    first = tree.pack_sequence_as(xs, [x[0] for x in xs_flat])
    # Peel step 0: it fixes the outputs' dtypes and shapes for the TensorArrays.
    carry, y0 = fn(init, first)
    y0_flat = tree.flatten(y0)
    arrays = [
        tf.TensorArray(y.dtype, size=n, element_shape=y.shape).write(0, y) for y in y0_flat
    ]
    inputs = [tf.TensorArray(x.dtype, size=n, element_shape=x.shape[1:]).unstack(x)
              for x in xs_flat]

    def body(t, carry, arrays):
        x = tree.pack_sequence_as(xs, [a.read(t) for a in inputs])
        carry, y = fn(carry, x)
        arrays = [a.write(t, v) for a, v in zip(arrays, tree.flatten(y))]
        return t + 1, carry, arrays

    _, carry, arrays = tf.while_loop(
        lambda t, *_: t < n, body, (tf.constant(1), carry, arrays), maximum_iterations=n)
    ys = tree.pack_sequence_as(y0, [a.stack() for a in arrays])
    return carry, ys
