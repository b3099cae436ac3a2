"""Model summaries: the course tables of SPEC section 2 exactly, totals, FLOPs and the
memory estimate's arithmetic."""
import numpy as np
import pytest

import cnnlab.layers as L


def hwc(shape):
    """The courses write H x W x C; our rows are channels first."""
    return shape[1:] + shape[:1] if len(shape) == 3 else shape


def lenet_like(separate_relu=False):
    """Ng's LeNet-like net: conv f5 s1 x8, maxpool 2, conv f5 s1 x16, maxpool 2,
    FC 120, FC 84, softmax 10 (the FC layers flatten their input, as in the course)."""
    if separate_relu:
        return L.Sequential([L.Conv2D(8, 5), L.ReLU(), L.MaxPool2D(2), L.Conv2D(16, 5), L.ReLU(),
                             L.MaxPool2D(2), L.Flatten(), L.Dense(120), L.ReLU(), L.Dense(84),
                             L.ReLU(), L.Dense(10), L.Softmax()], input_shape=(3, 32, 32), seed=0)
    return L.Sequential([
        L.Conv2D(8, 5, activation="relu"), L.MaxPool2D(2),
        L.Conv2D(16, 5, activation="relu"), L.MaxPool2D(2),
        L.Dense(120, activation="relu"), L.Dense(84, activation="relu"),
        L.Dense(10, activation="softmax"),
    ], input_shape=(3, 32, 32), seed=0)


# | layer | shape (H x W x C) | activations | params |  -- SPEC section 2, exactly
NG_LENET = [
    ("input", (32, 32, 3), 3072, 0),
    ("conv f5 s1, 8 filters", (28, 28, 8), 6272, 608),
    ("maxpool 2", (14, 14, 8), 1568, 0),
    ("conv f5 s1, 16 filters", (10, 10, 16), 1600, 3216),
    ("maxpool 2", (5, 5, 16), 400, 0),
    ("FC 120", (120,), 120, 48120),
    ("FC 84", (84,), 84, 10164),
    ("softmax 10", (10,), 10, 850),
]


def test_ng_lenet_table_exactly():
    rows = lenet_like().summary(print_fn=None)
    assert len(rows) == len(NG_LENET)
    got = [(hwc(r["output_shape"]), r["activations"], r["params"]) for r in rows]
    assert got == [(s, a, p) for _, s, a, p in NG_LENET]
    assert [r["type"] for r in rows] == ["Input", "Conv2D", "MaxPool2D", "Conv2D", "MaxPool2D",
                                         "Dense", "Dense", "Dense"]
    assert rows[0]["layer"] == "input" and rows[0]["flops"] == 0
    assert rows.totals["params"] == 608 + 3216 + 48120 + 10164 + 850


def test_ng_lenet_with_separate_activation_layers():
    rows = lenet_like(separate_relu=True).summary(print_fn=None)
    main = [r for r in rows if r["type"] not in ("ReLU", "Flatten", "Softmax")]
    assert [(hwc(r["output_shape"]), r["activations"], r["params"]) for r in main] == \
        [(s, a, p) for _, s, a, p in NG_LENET]
    extra = [r for r in rows if r["type"] in ("ReLU", "Flatten", "Softmax")]
    assert all(r["params"] == 0 for r in extra)
    assert rows[-1]["output_shape"] == (10,) and rows[-1]["type"] == "Softmax"


def test_hung_yi_lee_keras_example():
    model = L.Sequential([
        L.Conv2D(25, 3), L.MaxPool2D(2), L.Conv2D(50, 3), L.MaxPool2D(2), L.Flatten(),
        L.Dense(100, activation="relu"), L.Dense(10, activation="softmax"),
    ], input_shape=(1, 28, 28), seed=0)
    rows = model.summary(print_fn=None)
    assert [r["output_shape"] for r in rows] == [(1, 28, 28), (25, 26, 26), (25, 13, 13),
                                                 (50, 11, 11), (50, 5, 5), (1250,), (100,), (10,)]
    assert [r["params"] for r in rows if r["params"]] == [250, 11300, 125100, 1010]


def test_ng_simple_39x39_net():
    model = L.Sequential([
        L.Conv2D(10, 3, activation="relu"), L.Conv2D(20, 5, stride=2, activation="relu"),
        L.Conv2D(40, 5, stride=2, activation="relu"), L.Flatten(), L.Dense(10, activation="softmax"),
    ], input_shape=(3, 39, 39), seed=0)
    rows = model.summary(print_fn=None)
    assert [hwc(r["output_shape"]) for r in rows[1:4]] == [(37, 37, 10), (17, 17, 20), (7, 7, 40)]
    assert rows[4]["output_shape"] == (1960,) and rows[4]["activations"] == 1960
    assert [r["params"] for r in rows[1:4]] == [280, 10 * 25 * 20 + 20, 20 * 25 * 40 + 40]


def test_flops_per_layer():
    model = L.Sequential([L.Conv2D(8, 5), L.MaxPool2D(2), L.Dense(10), L.ReLU()],
                         input_shape=(3, 32, 32))
    rows = model.summary(print_fn=None)
    assert rows[1]["flops"] == 2 * (8 * 28 * 28) * (3 * 5 * 5)  # 2 x multiply-adds
    assert rows[2]["flops"] == 8 * 14 * 14 * 4                   # one per window element
    assert rows[3]["flops"] == 2 * (8 * 14 * 14) * 10
    assert rows[4]["flops"] == 10
    assert rows.totals["flops"] == sum(r["flops"] for r in rows)


def test_totals_and_memory_arithmetic():
    model = lenet_like()
    s = model.summary(batch_size=64, optimizer_slots=1, print_fn=None)
    p, isz, b = 62958, 4, 64
    act = 6272 + 1568 + 1600 + 400 + 120 + 84 + 10
    assert s.totals == {"params": p, "frozen": 0, "state": 0, "input": 3072, "activations": act,
                        "flops": sum(r["flops"] for r in s)}
    tr = s.memory["training"]
    assert tr["activations"] == tr["activation_grads"] == b * act * isz
    assert tr["params"] == tr["grads"] == tr["optimizer"] == p * isz  # x3 with one slot
    assert tr["batch"] == b * 3072 * isz
    assert tr["total"] == 2 * b * act * isz + 3 * p * isz + b * 3072 * isz
    inf = s.memory["inference"]
    assert inf["activations"] == b * (3072 + 6272) * isz  # the largest input/output pair
    assert inf["total"] == inf["activations"] + p * isz
    assert s.memory["dtype"] == "float32" and s.memory["batch_size"] == 64


def test_memory_counts_state_and_float64():
    model = L.Sequential([L.Conv2D(4, 3), L.BatchNorm(), L.Flatten(), L.Dense(2)],
                         input_shape=(1, 6, 6), dtype=np.float64)
    s = model.summary(batch_size=2, optimizer_slots=0, print_fn=None)
    assert s.totals["state"] == 8
    assert s.memory["training"]["state"] == 8 * 8
    assert s.memory["inference"]["params"] == (s.totals["params"] + 8) * 8


def test_nested_containers_rows_and_totals():
    model = L.Sequential([
        L.Conv2D(4, 3, padding=1),
        L.Concat([L.Conv2D(3, 1), [L.Conv2D(2, 1), L.Conv2D(5, 3, padding=1)]]),
        L.Residual([L.Conv2D(8, 3, padding=1), L.ReLU()]),
        L.GlobalAvgPool2D(), L.Dense(3),
    ], input_shape=(2, 6, 6))
    rows = model.summary(print_fn=None)
    concat = rows[2]
    assert concat["layer"] == "concat" and concat["output_shape"] == (8, 6, 6)
    assert concat["params"] == (3 * 4 + 3) + (2 * 4 + 2) + (5 * 2 * 9 + 5)
    assert sum(r["params"] for r in rows) == model.count_params()
    nested = model.summary(expand_nested=True, print_fn=None)
    names = [r["layer"] for r in nested]
    assert "concat/sequential/conv2d_1" in names and "residual/sequential/relu" in names
    # activations kept for backward include those inside the containers
    inner = 6 * 6 * (4 + 3 + 2 + 5 + 8 + 8 + 8 + 8) + 8 + 3
    assert nested.totals["activations"] == inner


def test_summary_prints_and_builds():
    printed = []
    model = L.Sequential([L.Conv2D(2, 3), L.Flatten(), L.Dense(4)], name="tiny")
    with pytest.raises(ValueError, match="input_shape"):
        model.summary(print_fn=None)
    rows = model.summary((1, 5, 5), print_fn=printed.append)
    assert model.built and model.input_shape == (1, 5, 5)
    assert printed == [rows.text] and str(rows) == rows.text
    assert 'Model: "tiny"' in rows.text and "conv2d (Conv2D)" in rows.text and "(2, 3, 3)" in rows.text
    with pytest.raises(ValueError, match="channels"):
        model.summary((3, 5, 5), print_fn=None)
    with pytest.raises(ValueError, match="batch_size"):
        model.summary(batch_size=0, print_fn=None)


def test_summary_for_another_spatial_size_of_a_fully_convolutional_net():
    model = L.Sequential([L.Conv2D(4, 3), L.MaxPool2D(2), L.Conv2D(2, 1)], input_shape=(3, 10, 10))
    rows = model.summary((3, 20, 20), print_fn=None)
    assert rows[-1]["output_shape"] == (2, 9, 9)
    assert rows[1]["params"] == 4 * 27 + 4
