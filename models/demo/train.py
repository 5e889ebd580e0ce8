#!/usr/bin/env python3
"""Train the three demo models shipped with Inferrer and export them to ONNX.

Run with the system interpreter, which carries torch, scikit-learn and onnx:

    /usr/bin/python3 models/demo/train.py

Everything is trained on datasets bundled with scikit-learn, so no network
access is needed. Seeds are fixed and torch runs single-threaded, so a rerun
reproduces the same weights and the same .onnx bytes.

Outputs (next to this script):
    iris.onnx     + iris.json      4 flower measurements -> species
    diabetes.onnx + diabetes.json  10 standardised features -> disease progression
    digits.onnx   + digits.json    8x8 grayscale digit (pixel/16) -> 0..9
"""

import json
import os
import random
import re
import sys

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.datasets import load_diabetes, load_digits, load_iris
from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split

HERE = os.path.dirname(os.path.abspath(__file__))
OPSET = 13
SEED = 20240601


def reset_seeds(seed=SEED):
    """Put every random number generator we touch into a known state."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)


# ---------------------------------------------------------------------------
# Model definitions. Each wrapper returns exactly the outputs the ONNX graph
# should expose, in the order they should appear.
# ---------------------------------------------------------------------------

class IrisNet(nn.Module):
    """Tiny MLP. Feature scaling is baked in so callers send raw centimetres."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))
        self.hidden = nn.Linear(4, 16)
        self.out = nn.Linear(16, 3)

    def logits(self, x):
        z = (x - self.mean) / self.std
        return self.out(torch.relu(self.hidden(z)))

    def forward(self, x):
        p = torch.softmax(self.logits(x), dim=1)
        return torch.argmax(p, dim=1), p


class DiabetesNet(nn.Module):
    """Linear regressor; the target's scale is folded back in at the output."""

    def __init__(self, y_mean, y_std):
        super().__init__()
        self.linear = nn.Linear(10, 1)
        self.y_mean = float(y_mean)
        self.y_std = float(y_std)

    def scaled(self, x):
        return self.linear(x)

    def forward(self, x):
        return self.linear(x) * self.y_std + self.y_mean


class DigitsNet(nn.Module):
    """Two 3x3 conv layers, one 2x2 pool, then a small dense head."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=3, padding=1)
        self.fc1 = nn.Linear(32 * 4 * 4, 64)
        self.fc2 = nn.Linear(64, 10)

    def logits(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # 8x8 -> 4x4
        x = torch.flatten(x, 1)
        return self.fc2(F.relu(self.fc1(x)))

    def forward(self, x):
        p = torch.softmax(self.logits(x), dim=1)
        return torch.argmax(p, dim=1), p


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def run_minibatches(model, loss_of, x, y, epochs, batch_size, lr, weight_decay=0.0):
    """Plain Adam loop over shuffled minibatches (shuffling uses torch's RNG)."""
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    n = x.shape[0]
    model.train()
    for _ in range(epochs):
        order = torch.randperm(n)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            opt.zero_grad()
            loss = loss_of(x[idx], y[idx])
            loss.backward()
            opt.step()
    model.eval()


def export(model, example, path, input_name, output_names, description):
    """Export with a symbolic batch dimension, then tidy the proto."""
    axes = {input_name: {0: "batch"}}
    for name in output_names:
        axes[name] = {0: "batch"}
    torch.onnx.export(
        model,
        (example,),
        path,
        input_names=[input_name],
        output_names=output_names,
        dynamic_axes=axes,
        opset_version=OPSET,
        do_constant_folding=True,
    )
    proto = onnx.load(path)
    # Drop per-node source traces so the file does not depend on where the
    # script lives, and record a human-readable description instead.
    for node in proto.graph.node:
        node.doc_string = ""
    proto.doc_string = description
    proto.graph.name = os.path.splitext(os.path.basename(path))[0]
    onnx.checker.check_model(proto)
    onnx.save(proto, path)


def write_sidecar(path, description, labels, example, expected):
    data = {"description": description}
    if labels is not None:
        data["labels"] = labels
    data["example"] = example
    data["expected"] = expected
    text = json.dumps(data, indent=2)
    # Keep each innermost list of numbers on one line (an 8x8 image then
    # reads as eight rows instead of a hundred lines).
    text = re.sub(r"\[\s*([-0-9.e+,\s]*?)\s*\]",
                  lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]",
                  text)
    with open(path, "w") as fh:
        fh.write(text + "\n")


def f32_list(arr, digits=7):
    """float32 outputs -> short floats (significant digits) for the JSON files."""
    return [float("%.*g" % (digits, float(v))) for v in np.asarray(arr).ravel()]


def nested(arr):
    """Array -> nested Python lists for JSON."""
    return np.asarray(arr, dtype=np.float64).tolist()


# ---------------------------------------------------------------------------
# Verification: prefer onnxruntime, otherwise re-run the torch module and
# rely on onnx.checker for the graph itself.
# ---------------------------------------------------------------------------

try:
    import onnxruntime as ort  # noqa: F401
    HAVE_ORT = True
except ImportError:
    HAVE_ORT = False


def describe_io(path):
    proto = onnx.load(path)
    onnx.checker.check_model(proto)
    type_names = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.INT64: "int64"}

    def fmt(vi):
        t = vi.type.tensor_type
        dims = [d.dim_param if d.dim_param else str(d.dim_value) for d in t.shape.dim]
        return "%s %s [%s]" % (vi.name, type_names.get(t.elem_type, t.elem_type), ", ".join(dims))

    inits = {i.name for i in proto.graph.initializer}
    ins = [fmt(v) for v in proto.graph.input if v.name not in inits]
    outs = [fmt(v) for v in proto.graph.output]
    return ins, outs, os.path.getsize(path)


def verify(path, module, x_np):
    """Return the model's outputs for x_np as a list of numpy arrays."""
    if HAVE_ORT:
        import onnxruntime as ort
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        got = sess.run(None, {name: x_np})
        with torch.no_grad():
            ref = module(torch.from_numpy(x_np))
        ref = ref if isinstance(ref, tuple) else (ref,)
        for g, r in zip(got, ref):
            if g.dtype.kind == "f":
                assert np.allclose(g, r.numpy(), atol=1e-4), path
            else:
                assert np.array_equal(g, r.numpy()), path
        return got, "onnxruntime"
    with torch.no_grad():
        ref = module(torch.from_numpy(x_np))
    ref = ref if isinstance(ref, tuple) else (ref,)
    return [r.numpy() for r in ref], "onnx.checker + torch"


# ---------------------------------------------------------------------------
# Individual models
# ---------------------------------------------------------------------------

def build_iris():
    reset_seeds()
    ds = load_iris()
    x = ds.data.astype(np.float32)
    y = ds.target.astype(np.int64)
    # Split the original float64 rows too, so the JSON example shows the
    # dataset's own numbers (6.7, not 6.699999809...).
    x_tr, x_te, _, raw_te, y_tr, y_te = train_test_split(
        x, ds.data, y, test_size=0.3, random_state=7, stratify=y)

    model = IrisNet(x_tr.mean(axis=0), x_tr.std(axis=0))
    xt, yt = torch.from_numpy(x_tr), torch.from_numpy(y_tr)
    run_minibatches(model, lambda a, b: F.cross_entropy(model.logits(a), b),
                    xt, yt, epochs=200, batch_size=16, lr=0.01)

    with torch.no_grad():
        pred = model(torch.from_numpy(x_te))[0].numpy()
    acc = float((pred == y_te).mean())

    labels = [str(n) for n in ds.target_names]  # setosa, versicolor, virginica
    desc = ("Small MLP trained on the scikit-learn iris dataset (raw sepal/petal "
            "measurements in cm) with %.1f%% accuracy on a 45-flower held-out split."
            % (acc * 100))
    path = os.path.join(HERE, "iris.onnx")
    export(model, torch.from_numpy(x_te[:2]), path, "input", ["label", "probabilities"], desc)

    # A real flower from the held-out split, chosen from class 2 (virginica).
    pick = np.where(y_te == 2)[0][0]
    row = x_te[pick]
    outs, how = verify(path, model, row[None, :])
    label, probs = int(outs[0][0]), outs[1][0]
    write_sidecar(os.path.join(HERE, "iris.json"), desc, labels,
                  nested(raw_te[pick]), {"label": label, "class": labels[label],
                                "probabilities": f32_list(probs)})
    return {"name": "iris", "path": path, "metric": "test accuracy %.4f" % acc,
            "verified": how, "example": nested(raw_te[pick]),
            "expected": "label=%d (%s) p=%s" % (label, labels[label], f32_list(probs, 4))}


def build_diabetes():
    reset_seeds()
    ds = load_diabetes()  # features come already mean-centred and scaled
    x = ds.data.astype(np.float32)
    y = ds.target.astype(np.float32)
    x_tr, x_te, _, raw_te, y_tr, y_te = train_test_split(
        x, ds.data, y, test_size=0.2, random_state=7)

    y_mean, y_std = float(y_tr.mean()), float(y_tr.std())
    model = DiabetesNet(y_mean, y_std)
    xt = torch.from_numpy(x_tr)
    yt = torch.from_numpy((y_tr - y_mean) / y_std)[:, None]
    run_minibatches(model, lambda a, b: F.mse_loss(model.scaled(a), b),
                    xt, yt, epochs=600, batch_size=32, lr=0.01)

    with torch.no_grad():
        pred = model(torch.from_numpy(x_te))[:, 0].numpy()
    r2 = float(r2_score(y_te, pred))

    desc = ("Linear regressor trained on the scikit-learn diabetes dataset "
            "(10 standardised baseline features -> disease progression one year "
            "later) with R^2 = %.3f on a held-out 20%% split." % r2)
    path = os.path.join(HERE, "diabetes.onnx")
    export(model, torch.from_numpy(x_te[:2]), path, "input", ["prediction"], desc)

    row = x_te[0]
    outs, how = verify(path, model, row[None, :])
    value = float(outs[0][0, 0])
    write_sidecar(os.path.join(HERE, "diabetes.json"), desc, None,
                  nested(raw_te[0]), {"prediction": f32_list([value])})
    return {"name": "diabetes", "path": path,
            "metric": "test R^2 %.4f (dataset target of example: %g)" % (r2, y_te[0]),
            "verified": how, "example": nested(raw_te[0]),
            "expected": "prediction=%.4f" % value}


def build_digits():
    reset_seeds()
    ds = load_digits()
    x = (ds.images.astype(np.float32) / 16.0)[:, None, :, :]  # [n, 1, 8, 8], 0..1
    y = ds.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=0.25, random_state=7, stratify=y)

    model = DigitsNet()
    xt, yt = torch.from_numpy(x_tr), torch.from_numpy(y_tr)
    run_minibatches(model, lambda a, b: F.cross_entropy(model.logits(a), b),
                    xt, yt, epochs=30, batch_size=32, lr=0.002)

    with torch.no_grad():
        pred = model(torch.from_numpy(x_te))[0].numpy()
    acc = float((pred == y_te).mean())

    labels = [str(i) for i in range(10)]
    desc = ("Small CNN trained on the scikit-learn 8x8 handwritten digits dataset "
            "(pixels scaled to 0..1 as value/16) with %.1f%% accuracy on a "
            "held-out 25%% split." % (acc * 100))
    path = os.path.join(HERE, "digits.onnx")
    export(model, torch.from_numpy(x_te[:2]), path, "image", ["label", "probabilities"], desc)

    # A real held-out image of a seven.
    img = x_te[np.where(y_te == 7)[0][0]]
    outs, how = verify(path, model, img[None])
    label, probs = int(outs[0][0]), outs[1][0]
    write_sidecar(os.path.join(HERE, "digits.json"), desc, labels,
                  nested(img), {"label": label, "class": labels[label],
                                "probabilities": f32_list(probs)})
    return {"name": "digits", "path": path, "metric": "test accuracy %.4f" % acc,
            "verified": how, "example": "one 1x8x8 image of a 7 (see digits.json)",
            "expected": "label=%d p(label)=%.4f" % (label, float(probs[label]))}


def main():
    results = [build_iris(), build_diabetes(), build_digits()]
    print("Inferrer demo models (opset %d, onnxruntime %s)"
          % (OPSET, "available" if HAVE_ORT else "not importable"))
    for r in results:
        ins, outs, size = describe_io(r["path"])
        print("\n%s  (%d bytes)" % (os.path.relpath(r["path"]), size))
        print("  inputs:   " + "; ".join(ins))
        print("  outputs:  " + "; ".join(outs))
        print("  metric:   " + r["metric"])
        print("  verified: " + r["verified"])
        print("  example:  %s" % (r["example"],))
        print("  expected: " + r["expected"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
