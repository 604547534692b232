"""Metrics against plain-loop references, sklearn's ROC AUC and Keras 3."""
import numpy as np
import pytest

import convnet as keras
from convnet import metrics

from keras_reference import keras_or_skip, numpy_of


def test_mean_and_sum_follow_keras_examples():
    m = metrics.Mean()
    m.update_state([1, 3, 5, 7])
    assert m.result() == 4.0
    m.reset_state()
    m.update_state([1, 3, 5, 7], sample_weight=[1, 1, 0, 0])
    assert m.result() == 2.0
    s = metrics.Sum()
    s.update_state([1, 3, 5, 7], sample_weight=[1, 1, 0, 0])
    assert s.result() == 4.0
    m.reset_state()
    m.update_state(0.5, 10)          # a batch loss and its batch size, as fit logs it
    m.update_state(2.0, 30)
    assert m.result() == pytest.approx((0.5 * 10 + 2.0 * 30) / 40)
    # Rank-2 values are one mean per sample, weighted per sample.
    m.reset_state()
    m.update_state([[1.0, 3.0], [5.0, 7.0]], sample_weight=[3, 1])
    assert m.result() == pytest.approx((2.0 * 3 + 6.0 * 1) / 4)


def test_accuracies_match_loops(rng):
    y = rng.integers(0, 2, (20, 1)).astype(float)
    p = rng.uniform(size=(20, 1))
    w = rng.uniform(size=20)
    m = metrics.BinaryAccuracy(threshold=0.3)
    m.update_state(y, p, sample_weight=w)
    hits = [float(y[i, 0] == (p[i, 0] > 0.3)) for i in range(20)]
    assert m.result() == pytest.approx(np.dot(hits, w) / w.sum())
    labels = rng.integers(0, 6, 30)
    scores = rng.normal(size=(30, 6))
    scores[0] = [1, 1, 1, 1, 0, 0]           # a tie across the k-th place counts as a hit
    labels[0] = 3
    for k in (1, 2, 5):
        expected = []
        for row, label in zip(scores, labels):
            kth = np.sort(row)[::-1][k - 1]
            expected.append(float(row[label] >= kth))
        sparse = metrics.SparseTopKCategoricalAccuracy(k=k)
        sparse.update_state(labels, scores)
        dense = metrics.TopKCategoricalAccuracy(k=k)
        dense.update_state(np.eye(6)[labels], scores)
        assert sparse.result() == pytest.approx(np.mean(expected))
        assert dense.result() == pytest.approx(np.mean(expected))
    assert metrics.SparseTopKCategoricalAccuracy().k == 5
    assert metrics.sparse_top_k_categorical_accuracy(labels, scores, k=2).shape == (30,)
    assert metrics.sparse_top_k_categorical_accuracy(
        np.array([2, 0]), np.array([[2, 1, 0], [0, 1, 2]]), k=1, from_sorted_ids=True).tolist() \
        == [1.0, 1.0]


def _confusion(y, p, threshold, w):
    positive = y != 0
    above = p > threshold
    return {"tp": np.sum(w * (positive & above)), "fp": np.sum(w * (~positive & above)),
            "tn": np.sum(w * (~positive & ~above)), "fn": np.sum(w * (positive & ~above))}


def test_precision_recall_and_counts_match_loops(rng):
    y = rng.integers(0, 2, 50)
    p = rng.uniform(size=50)
    w = rng.uniform(size=50)
    thresholds = [0.2, 0.5, 0.9]
    precision = metrics.Precision(thresholds=thresholds)
    recall = metrics.Recall(thresholds=thresholds)
    precision.update_state(y, p, sample_weight=w)
    recall.update_state(y, p, sample_weight=w)
    for i, t in enumerate(thresholds):
        c = _confusion(y, p, t, w)
        assert precision.result()[i] == pytest.approx(c["tp"] / (c["tp"] + c["fp"]))
        assert recall.result()[i] == pytest.approx(c["tp"] / (c["tp"] + c["fn"]))
    for cls, cell in [(metrics.TruePositives, "tp"), (metrics.FalsePositives, "fp"),
                      (metrics.TrueNegatives, "tn"), (metrics.FalseNegatives, "fn")]:
        m = cls()
        m.update_state(y, p, sample_weight=w)
        assert m.result() == pytest.approx(_confusion(y, p, 0.5, w)[cell])
    # Evenly spaced thresholds take the bucketed path: same counts.
    even = metrics.Precision(thresholds=[0.0, 0.25, 0.5, 0.75, 1.0])
    even.update_state(y, p)
    for i, t in enumerate([0.0, 0.25, 0.5, 0.75, 1.0]):
        c = _confusion(y, p, t, np.ones(50))
        assert even.result()[i] == pytest.approx(c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"]
                                                 else 0.0)


def test_precision_recall_top_k_and_class_id_match_loops(rng):
    labels = rng.integers(0, 4, 40)
    y = np.eye(4)[labels]
    p = rng.uniform(size=(40, 4))
    top2 = np.argsort(-p, axis=1)[:, :2]
    predicted = np.zeros_like(y, dtype=bool)
    np.put_along_axis(predicted, top2, True, axis=1)
    tp = np.sum(predicted & (y == 1))
    precision = metrics.Precision(top_k=2)
    precision.update_state(y, p)
    assert precision.result() == pytest.approx(tp / predicted.sum())
    recall = metrics.Recall(top_k=2)
    recall.update_state(y, p)
    assert recall.result() == pytest.approx(tp / y.sum())
    for_class = metrics.Recall(class_id=1)
    for_class.update_state(y, p)
    c = _confusion(y[:, 1], p[:, 1], 0.5, np.ones(40))
    assert for_class.result() == pytest.approx(c["tp"] / (c["tp"] + c["fn"]))


def _auc_reference(y, p, w, num_thresholds, curve, method):
    """Keras' AUC written as loops over its thresholds."""
    inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
    thresholds = [-1e-7] + inner + [1 + 1e-7]
    c = [_confusion(y, p, t, w) for t in thresholds]
    tp = np.array([x["tp"] for x in c])
    fp = np.array([x["fp"] for x in c])
    tn = np.array([x["tn"] for x in c])
    fn = np.array([x["fn"] for x in c])

    def ratio(a, b):
        return a / b if b else 0.0

    total = 0.0
    for i in range(num_thresholds - 1):
        if curve == "PR" and method == "interpolation":
            dtp, p_a, p_b = tp[i] - tp[i + 1], tp[i] + fp[i], tp[i + 1] + fp[i + 1]
            slope = ratio(dtp, max(p_a - p_b, 0))
            intercept = tp[i + 1] - slope * p_b
            log_ratio = np.log(p_a / p_b) if p_a > 0 and p_b > 0 else 0.0
            total += ratio(slope * (dtp + intercept * log_ratio), tp[i + 1] + fn[i + 1])
            continue
        if curve == "ROC":
            x = [ratio(fp[j], fp[j] + tn[j]) for j in (i, i + 1)]
            h = [ratio(tp[j], tp[j] + fn[j]) for j in (i, i + 1)]
        else:
            x = [ratio(tp[j], tp[j] + fn[j]) for j in (i, i + 1)]
            h = [ratio(tp[j], tp[j] + fp[j]) for j in (i, i + 1)]
        height = {"interpolation": sum(h) / 2, "minoring": min(h), "majoring": max(h)}[method]
        total += (x[0] - x[1]) * height
    return total


@pytest.mark.parametrize("curve", ["ROC", "PR"])
@pytest.mark.parametrize("method", ["interpolation", "minoring", "majoring"])
def test_auc_matches_keras_formula(curve, method, rng):
    y = rng.integers(0, 2, 60)
    p = rng.uniform(size=60)
    w = rng.uniform(0.5, 1.5, 60)
    auc = metrics.AUC(num_thresholds=25, curve=curve, summation_method=method)
    auc.update_state(y[:30], p[:30], sample_weight=w[:30])
    auc.update_state(y[30:], p[30:], sample_weight=w[30:])
    assert auc.result() == pytest.approx(_auc_reference(y, p, w, 25, curve, method), rel=1e-6)


def test_roc_auc_equals_sklearn_when_no_two_scores_share_a_bucket(rng):
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    # Scores at bucket centres, ties allowed, distinct scores in distinct buckets: Keras'
    # trapezoids then trace exactly the ROC curve sklearn integrates.
    buckets = rng.choice(199, size=120)
    p = (buckets + 0.5) / 199
    y = (rng.uniform(size=120) < p).astype(int)
    auc = metrics.AUC()
    assert auc.num_thresholds == 200
    auc.update_state(y, p)
    assert auc.result() == pytest.approx(sklearn_metrics.roc_auc_score(y, p), abs=1e-12)
    w = rng.uniform(0.1, 2.0, 120)
    weighted = metrics.AUC()
    weighted.update_state(y, p, sample_weight=w)
    # (the weights are float32 in the counts, as in Keras)
    assert weighted.result() == pytest.approx(
        sklearn_metrics.roc_auc_score(y, p, sample_weight=w), abs=1e-7)


def test_auc_multi_label_and_from_logits(rng):
    y = rng.integers(0, 2, (40, 3))
    z = rng.normal(size=(40, 3))
    p = 1 / (1 + np.exp(-z))
    multi = metrics.AUC(multi_label=True, from_logits=True, num_thresholds=30,
                        label_weights=[1, 2, 0])
    multi.update_state(y, z)
    per_label = [_auc_reference(y[:, j], p[:, j], np.ones(40), 30, "ROC", "interpolation")
                 for j in range(3)]
    assert multi.result() == pytest.approx((per_label[0] + 2 * per_label[1]) / 3, rel=1e-6)


def test_confusion_metrics_match_keras(rng):
    keras_ref = keras_or_skip()
    y = rng.integers(0, 2, (64, 1))
    p = rng.uniform(size=(64, 1)).astype(np.float32)
    w = rng.uniform(size=64)
    labels = rng.integers(0, 5, 32)
    scores = rng.uniform(size=(32, 5)).astype(np.float32)
    for name, kwargs, data in [
            ("AUC", {}, (y, p, w)), ("AUC", {"curve": "PR"}, (y, p, w)),
            ("AUC", {"curve": "PR", "summation_method": "majoring"}, (y, p, w)),
            ("AUC", {"thresholds": [0.1, 0.5, 0.7]}, (y, p, w)),
            ("AUC", {"multi_label": True}, (np.eye(5)[labels], scores, None)),
            ("Precision", {}, (y, p, w)), ("Recall", {"thresholds": [0.2, 0.9]}, (y, p, w)),
            ("Precision", {"top_k": 2}, (np.eye(5)[labels], scores, None)),
            ("Recall", {"class_id": 3}, (np.eye(5)[labels], scores, None)),
            ("TruePositives", {}, (y, p, w)), ("BinaryAccuracy", {}, (y, p, w)),
            ("TopKCategoricalAccuracy", {"k": 2}, (np.eye(5)[labels], scores, None)),
            ("SparseTopKCategoricalAccuracy", {}, (labels, scores, None)),
            ("MeanSquaredError", {}, (y, p, w)), ("MeanAbsoluteError", {}, (y, p, w)),
            ("RootMeanSquaredError", {}, (y, p, w)),
            ("BinaryCrossentropy", {"label_smoothing": 0.1}, (y, p, w)),
            ("SparseCategoricalCrossentropy", {}, (labels, scores, None))]:
        ours, theirs = getattr(metrics, name)(**kwargs), getattr(keras_ref.metrics, name)(**kwargs)
        ours.update_state(*data[:2], sample_weight=data[2])
        theirs.update_state(*data[:2], sample_weight=data[2])
        np.testing.assert_allclose(ours.result(), numpy_of(theirs.result()), rtol=1e-5,
                                   atol=1e-6, err_msg=f"{name} {kwargs}")


def test_error_and_loss_metrics_match_formulas(rng):
    y = rng.normal(size=(10, 3))
    p = rng.normal(size=(10, 3))
    w = rng.uniform(size=10)
    for cls, per_sample in [(metrics.MeanSquaredError, ((p - y) ** 2).mean(axis=1)),
                            (metrics.MeanAbsoluteError, np.abs(p - y).mean(axis=1))]:
        m = cls()
        m.update_state(y, p, sample_weight=w)
        assert m.result() == pytest.approx(np.dot(per_sample, w) / w.sum())
    rmse = metrics.RootMeanSquaredError()
    rmse.update_state(y, p)
    assert rmse.result() == pytest.approx(np.sqrt(np.mean((p - y) ** 2)))
    labels = rng.integers(0, 3, 10)
    probs = rng.dirichlet(np.ones(3), 10)
    scce = metrics.SparseCategoricalCrossentropy()
    scce.update_state(labels, probs)
    assert scce.result() == pytest.approx(-np.mean(np.log(probs[np.arange(10), labels])))


def test_accuracy_is_resolved_from_shapes_like_keras(rng):
    binary = metrics.get("accuracy")
    binary.update_state(np.array([[1], [0]]), np.array([[0.9], [0.8]]))
    assert binary.result() == 0.5 and binary._resolved.__class__ is metrics.BinaryAccuracy
    sparse = metrics.get("acc")
    sparse.update_state(np.array([2, 0]), np.array([[0.1, 0.2, 0.7], [0.3, 0.6, 0.1]]))
    assert sparse.result() == 0.5 and sparse.name == "acc"
    categorical = metrics.get("accuracy")
    categorical.update_state(np.eye(3)[[2, 1]], np.array([[0.1, 0.2, 0.7], [0.3, 0.6, 0.1]]))
    assert categorical._resolved.__class__ is metrics.CategoricalAccuracy
    categorical.reset_state()
    assert categorical.result() == 0.0


def test_get_names_functions_and_configs():
    for identifier, cls in [("auc", metrics.AUC), ("AUC", metrics.AUC),
                            ("precision", metrics.Precision), ("recall", metrics.Recall),
                            ("mae", metrics.MeanAbsoluteError), ("mse", metrics.MeanSquaredError),
                            ("binary_accuracy", metrics.BinaryAccuracy),
                            ("top_k_categorical_accuracy", metrics.TopKCategoricalAccuracy),
                            ("sparse_top_k_categorical_accuracy",
                             metrics.SparseTopKCategoricalAccuracy),
                            ("binary_crossentropy", metrics.BinaryCrossentropy),
                            ("root_mean_squared_error", metrics.RootMeanSquaredError)]:
        metric = metrics.get(identifier)
        assert type(metric) is cls and metric.name == identifier
    wrapped = metrics.get(metrics.binary_accuracy)
    assert isinstance(wrapped, metrics.MeanMetricWrapper) and wrapped.name == "binary_accuracy"
    for metric in [metrics.AUC(num_thresholds=50, curve="PR", name="prauc"),
                   metrics.Precision(thresholds=[0.3, 0.6], class_id=2),
                   metrics.BinaryAccuracy(threshold=0.7), metrics.TopKCategoricalAccuracy(k=3)]:
        clone = metrics.deserialize(metrics.serialize(metric))
        assert type(clone) is type(metric) and clone.get_config() == metric.get_config()
    assert metrics.AUC().name != metrics.AUC().name     # Keras' auto names: auc, auc_1, ...


def test_fit_logs_the_new_metrics(rng):
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = (x[:, :1] > 0).astype(np.float32)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy",
                  metrics=["accuracy", "auc", keras.metrics.Precision(name="p"), "recall"])
    history = model.fit(x, y, epochs=2, verbose=0)
    assert {"loss", "accuracy", "auc", "p", "recall"} <= set(history.history)
    assert all(0 <= v <= 1 for v in history.history["auc"])
    # A metric with several thresholds gives an array, which a progress line can print.
    several = keras.metrics.Precision(thresholds=[0.3, 0.7], name="p2")
    several.update_state(y, model.predict(x, verbose=0))
    assert keras.callbacks.format_logs({"p2": several.result()}).startswith("p2: [")
