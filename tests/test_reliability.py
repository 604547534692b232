"""Concurrency, fork, interruption and killed saves: correct results or a clean state, never a
hang or a crash."""
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import convnet as keras
from convnet import layers


def _model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((12, 12, 2)), layers.Conv2D(4, 3, activation="relu"),
                              layers.MaxPooling2D(2), layers.Flatten(),
                              layers.Dense(3, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    return model


def test_predict_from_several_python_threads_gives_the_serial_results():
    model = _model()
    inputs = [np.random.default_rng(i).standard_normal((40, 12, 12, 2)).astype(np.float32)
              for i in range(6)]
    expected = [model.predict(x, batch_size=8) for x in inputs]
    results = [[] for _ in inputs]

    def work(i):
        for _ in range(5):
            results[i].append(model.predict(inputs[i], batch_size=8))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    for want, got in zip(expected, results):
        assert len(got) == 5
        for g in got:
            assert g.tobytes() == want.tobytes()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_training_in_a_forked_child_neither_hangs_nor_crashes(tmp_path):
    script = textwrap.dedent("""
        import os, sys
        import numpy as np
        import convnet as keras
        from convnet import layers
        model = keras.Sequential([keras.Input((12, 12, 2)), layers.Conv2D(4, 3),
                                  layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(3)])
        model.compile("sgd", "mse")
        x, y = np.ones((32, 12, 12, 2), "float32"), np.zeros((32, 3), "float32")
        model.fit(x, y, epochs=1, verbose=0)          # the parent's OpenMP pool is running
        pid = os.fork()
        if pid == 0:
            model.fit(x, y, epochs=2, verbose=0)
            os._exit(0 if np.isfinite(model.predict(x)).all() else 3)
        _, status = os.waitpid(pid, 0)
        sys.exit(os.waitstatus_to_exitcode(status))
    """)
    # cwd: `python -c` puts the working directory first on sys.path, and a source checkout's
    # convnet/ (without compiled kernels) must not shadow the installed package.
    result = subprocess.run([sys.executable, "-c", script], timeout=120, capture_output=True,
                            text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]


def test_keyboard_interrupt_during_fit_leaves_the_model_usable():
    model = _model()
    x = np.random.default_rng(0).standard_normal((64, 12, 12, 2)).astype(np.float32)
    y = np.arange(64) % 3

    class Interrupt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=8, verbose=0, callbacks=[Interrupt()])
    assert np.isfinite(model.predict(x)).all()
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_a_save_killed_at_any_moment_leaves_a_loadable_file(tmp_path):
    path = tmp_path / "model.keras"
    model = _model()
    model.save(path)
    original = [w.copy() for w in model.get_weights()]
    saver = textwrap.dedent(f"""
        import numpy as np
        import convnet as keras
        model = keras.load_model({str(path)!r})
        step = 0
        while True:
            step += 1
            model.set_weights([w + step for w in model.get_weights()])
            model.save({str(path)!r})
            print(step, flush=True)
    """)
    rng = np.random.default_rng(0)
    for attempt in range(5):
        child = subprocess.Popen([sys.executable, "-c", saver], stdout=subprocess.PIPE,
                                 cwd=tmp_path)
        first = child.stdout.readline()
        assert first.strip().isdigit(), "the saving child never saved"
        time.sleep(float(rng.uniform(0, 0.2)))
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        loaded = keras.load_model(path)               # whole: the previous or the new file
        shift = loaded.get_weights()[1][0] - original[1][0]
        for got, base in zip(loaded.get_weights(), original):
            np.testing.assert_allclose(got, base + shift, rtol=1e-5, atol=1e-3)
        original = [w for w in loaded.get_weights()]
