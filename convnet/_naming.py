"""Keras' automatic names: the class name in snake case, made unique with a counter
("auc", "auc_1", ...) the way keras.src.utils.naming.auto_name does."""
import collections
import re

_counts = collections.defaultdict(int)


def snake_case(name):
    name = re.sub(r"\W+", "", name)
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def auto_name(class_name):
    base = snake_case(class_name)
    count = _counts[base]
    _counts[base] += 1
    return base if count == 0 else f"{base}_{count}"
