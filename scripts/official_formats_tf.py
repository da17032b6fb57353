"""Write MSI-Net weights in every TensorFlow format `msinet convert-official` reads, with real
TensorFlow (run it in an environment that has it; msinet itself never needs TensorFlow).

    python scripts/official_formats_tf.py OUT/shapes.json OUT/   # shapes: check_official_formats.py

Random weights under the official variable names (TF layout: kernels HWIO) go to
OUT/weights.npz, and the same weights to:
  frozen.pb          TF1-style frozen GraphDef (tf.compat.v1 graph, variables frozen to Const)
  tf1.ckpt.*         TF1 checkpoint (tf.compat.v1.train.Saver: keys are the variable names)
  tf2_variables/     TF2 SavedModel of a tf.Module (variables/ bundle keyed by object paths)
  tf2_frozen/        TF2 SavedModel whose function holds the weights as constants
  keras_export/      Keras 3 `Model.export` SavedModel (blocks as nested layers named like the
                     official scopes)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf


def conv(x, w, b):
    return tf.nn.relu(tf.nn.conv2d(x, w, 1, "SAME") + b)


def main() -> None:
    shapes = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    weights = {n: (rng.normal(size=s) * 0.05).astype(np.float32) for n, s in shapes.items()}
    np.savez(out / "weights.npz", **weights)
    first = "conv1/conv1_1"

    # TF1 graph: variables, a checkpoint, then the graph frozen to constants
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, None, None, 3], name="input")
        vs = {n: tf.compat.v1.get_variable(n, initializer=w) for n, w in weights.items()}
        y = tf.identity(conv(x, vs[f"{first}/kernel"], vs[f"{first}/bias"]), name="output")
        saver = tf.compat.v1.train.Saver(list(vs.values()))
        with tf.compat.v1.Session(graph=g) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            saver.save(sess, str(out / "tf1.ckpt"), write_meta_graph=False)
            frozen = tf.compat.v1.graph_util.convert_variables_to_constants(
                sess, g.as_graph_def(), [y.op.name, *(v.op.name for v in vs.values())]
            )
    (out / "frozen.pb").write_bytes(frozen.SerializeToString())

    # TF2: a module with variables named as the official ones, saved with its variables
    class Net(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.vs = {n.replace("/", "__"): tf.Variable(w, name=n) for n, w in weights.items()}

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
        def __call__(self, x):
            return conv(x, self.vs[f"{first}/kernel".replace("/", "__")],
                        self.vs[f"{first}/bias".replace("/", "__")])  # fmt: skip

    tf.saved_model.save(Net(), str(out / "tf2_variables"))

    # TF2: the weights as constants inside the saved function (frozen): made in the function
    # body, they are Const nodes of the function library under the variables' names
    class Frozen(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
        def __call__(self, x):
            consts = {n: tf.constant(w, name=n) for n, w in weights.items()}
            acc = conv(x, consts[f"{first}/kernel"], consts[f"{first}/bias"])
            for c in consts.values():  # every constant used, so none is pruned
                acc += 0.0 * tf.reduce_sum(c)
            return acc

    tf.saved_model.save(Frozen(), str(out / "tf2_frozen"))

    # Keras 3 (TensorFlow's default Keras): blocks as nested layers named like the official
    # scopes (Keras forbids "/" in a name), exported as a SavedModel, whose variables/ bundle
    # keys tensors by object paths and whose object graph names each variable
    import keras

    class Block(keras.layers.Layer):
        def __init__(self, name: str, convs: dict[str, tuple[int, ...]]) -> None:
            super().__init__(name=name)
            self.convs = []
            for conv_name, (kh, kw, cin, cout) in convs.items():
                layer = keras.layers.Conv2D(cout, (kh, kw), padding="same", name=conv_name)
                layer.build((None, None, None, cin))
                layer.set_weights([weights[f"{name}/{conv_name}/kernel"],
                                   weights[f"{name}/{conv_name}/bias"]])  # fmt: skip
                self.convs.append(layer)

        def call(self, x):
            return self.convs[0](x)

    blocks = {}
    for n, shape in shapes.items():
        if n.endswith("/kernel"):
            scope, conv_name, _ = n.split("/")
            blocks.setdefault(scope, {})[conv_name] = tuple(shape)

    class Net(keras.Model):
        def __init__(self) -> None:
            super().__init__(name="msinet")
            self.blocks = [Block(scope, convs) for scope, convs in blocks.items()]

        def call(self, x):
            return self.blocks[0](x)

    net = Net()
    net(np.zeros((1, 8, 8, 3), np.float32))
    net.export(str(out / "keras_export"), format="tf_saved_model", verbose=False)

    print(f"wrote {sorted(p.name for p in out.iterdir())} with TensorFlow {tf.__version__}")


if __name__ == "__main__":
    main()
