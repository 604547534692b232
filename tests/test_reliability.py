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
from convnet._core import threads as _threads

from conftest import run_python


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


needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

def run_with_fork_and_wait(script, cwd, timeout=120):
    """run_python(script), where `script` may call fork_and_wait(child): fork a child that
    runs child() (code that may hang: the parent kills it after 20 s) and return its exit
    status, 99 for a child that hung."""
    return run_python(FORK_AND_WAIT + textwrap.dedent(script), cwd, timeout)


FORK_AND_WAIT = textwrap.dedent("""
    import os, signal, time

    def fork_and_wait(child):
        pid = os.fork()
        if pid == 0:
            try:
                child()
                os._exit(0)
            except BaseException:
                import traceback
                traceback.print_exc()
                os._exit(3)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.01)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return 99
""")


@needs_fork
def test_a_fork_while_another_thread_runs_kernels_does_not_hang_the_child(tmp_path):
    """The fork copies SequentialBlas as another thread left it: its lock held (36 of 40
    such forks hung), or BLAS held to one thread with a depth no thread here will undo."""
    result = run_with_fork_and_wait("""
        import os, signal, sys, threading, time
        import numpy as np
        from threadpoolctl import threadpool_info
        from convnet import kernels
        a = np.random.default_rng(0).standard_normal((300, 200))
        expected = a @ a.T

        def multiplies():
            assert np.allclose(kernels.matmul(a, a.T), expected)

        def blas_threads():
            return [lib["num_threads"] for lib in threadpool_info()
                    if lib["user_api"] == "blas"]

        blas = kernels._sequential_blas
        before = blas_threads()
        # 1. Another thread is inside SequentialBlas's bookkeeping, holding its lock.
        blas._lock.acquire()
        codes = [fork_and_wait(multiplies)]
        blas._lock.release()

        # 2. Another thread is inside a kernel: BLAS is held to one thread.
        inside, leave = threading.Event(), threading.Event()

        def kernel_running():
            with blas:
                inside.set()
                leave.wait()

        worker = threading.Thread(target=kernel_running)
        worker.start()
        inside.wait()
        def restores_blas():
            multiplies()
            assert blas_threads() == before, (blas_threads(), before)
        codes.append(fork_and_wait(restores_blas))
        leave.set()
        worker.join()

        # 3. As it happens: forks at random moments of another thread's products.
        stop = threading.Event()
        def predicts():
            while not stop.is_set():
                kernels.matmul(a[:8], a.T)
        worker = threading.Thread(target=predicts)
        worker.start()
        for i in range(8):
            time.sleep(0.002 * i)
            codes.append(fork_and_wait(multiplies))
        stop.set()
        worker.join()
        print("child exit codes:", codes)
        sys.exit(max(codes))
    """, tmp_path, timeout=240)
    assert result.returncode == 0 and "child exit codes" in result.stdout, \
        result.stdout + result.stderr[-3000:]


@needs_fork
@pytest.mark.skipif(_threads.available_cpus() < 2, reason="needs 2 CPUs for 2 threads")
def test_more_threads_in_a_forked_child_work_or_raise_instead_of_hanging(tmp_path):
    """libgomp's pool does not survive fork(): a child of a thread that ran the kernels on
    2 threads stays on 1 and refuses more (it hung); a child of a thread without a pool
    may use 2, and gets the right numbers."""
    result = run_with_fork_and_wait("""
        import os, signal, sys, threading, time
        import numpy as np
        import convnet
        from convnet import kernels
        rng = np.random.default_rng(0)
        x, w = rng.standard_normal((8, 16, 16, 4)), rng.standard_normal((3, 3, 4, 8))
        convnet.set_num_threads(2)

        def refuses_more_threads():
            assert convnet.get_num_threads() == 1
            try:
                convnet.set_num_threads(2)
            except RuntimeError as error:
                assert "fork" in str(error) and "spawn" in str(error), error
            else:
                raise AssertionError("2 threads accepted on a lost pool")
            assert np.array_equal(kernels.conv2d(x, w), expected)

        def uses_two_threads():
            assert convnet.get_num_threads() == 1
            convnet.set_num_threads(2)
            assert np.array_equal(kernels.conv2d(x, w), expected)
            assert np.array_equal(kernels.max_pool2d(x, 2)[0], pooled)

        # The kernels ran on another thread only: this one has no libgomp pool.
        results = []
        worker = threading.Thread(target=lambda: results.append(
            (kernels.conv2d(x, w), kernels.max_pool2d(x, 2)[0])))
        worker.start()
        worker.join()
        expected, pooled = results[0]
        codes = [fork_and_wait(uses_two_threads)]
        kernels.conv2d(x, w)                 # now this thread has a pool of 2
        codes.append(fork_and_wait(refuses_more_threads))
        print("child exit codes:", codes)
        sys.exit(max(codes))
    """, tmp_path)
    assert result.returncode == 0 and "child exit codes" in result.stdout, \
        result.stdout + result.stderr[-3000:]


def test_a_million_threads_are_clipped_and_the_kernels_still_run(tmp_path):
    """set_num_threads(10**6) was accepted, and the next pooling call died in libgomp."""
    result = run_python("""
        import warnings
        import numpy as np
        import convnet
        from convnet import kernels
        from convnet._core.threads import available_cpus
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            convnet.set_num_threads(10 ** 6)
        assert convnet.get_num_threads() == available_cpus(), convnet.get_num_threads()
        assert "1000000 threads asked for" in str(caught[0].message)
        x = np.arange(2 * 6 * 6 * 3, dtype=np.float32).reshape(2, 6, 6, 3)
        assert np.array_equal(kernels.max_pool2d(x, 2)[0], x[:, 1::2, 1::2])
        print("ok")
    """, tmp_path)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]


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


def test_fit_while_other_threads_predict_and_concurrent_first_calls_build_once(rng):
    """Training state lives in each call's context, not in the layers: predict from other
    threads during fit neither fails nor disturbs it; eight first calls on an unbuilt model
    build it once and agree."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([layers.Conv2D(4, 3, activation="relu"), layers.MaxPooling2D(2),
                              layers.Flatten(), layers.Dense(3, activation="softmax")])
    x = rng.standard_normal((16, 12, 12, 2)).astype(np.float32)
    results, errors = [None] * 8, []
    barrier = threading.Barrier(8)

    def first_call(i):
        barrier.wait()
        try:
            results[i] = model.predict(x, verbose=0)
        except Exception as error:  # noqa: BLE001 - any failure is the test's subject
            errors.append(error)

    threads = [threading.Thread(target=first_call, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and all(r is not None for r in results)
    assert len(model.weights) == 4
    assert all(r.tobytes() == results[0].tobytes() for r in results)

    model.compile("sgd", "sparse_categorical_crossentropy")
    stop = threading.Event()

    def predict_forever():
        while not stop.is_set():
            try:
                assert model.predict(x, batch_size=4, verbose=0).shape == (16, 3)
            except Exception as error:  # noqa: BLE001
                errors.append(error)
                return

    predictor = threading.Thread(target=predict_forever)
    predictor.start()
    try:
        history = model.fit(x, np.arange(16) % 3, batch_size=4, epochs=3, verbose=0)
    finally:
        stop.set()
        predictor.join(timeout=120)
    assert not errors
    assert all(np.isfinite(history.history["loss"]))


def test_a_forged_file_declaring_a_huge_layer_allocates_nothing(tmp_path):
    """The architecture is rebuilt with its weights' shapes only and compared with the file
    before anything is allocated: a tiny file declaring Dense(2**27) fails fast and small."""
    import tracemalloc
    from convnet import saving
    model = keras.Sequential([keras.Input((32,)), layers.Dense(2)])
    path = tmp_path / "m.cnet"
    model.save(path)
    header, arrays = saving._read(path)
    header["config"]["layers"][1]["config"]["units"] = 2 ** 27
    saving._write_atomically(path, header, arrays)
    assert path.stat().st_size < 2000
    tracemalloc.start()
    try:
        with pytest.raises(saving.ModelFileError, match="expects"):
            keras.load_model(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20            # Dense(2**27) would take 16 GiB


def test_loading_a_deep_model_builds_each_layer_once(tmp_path, monkeypatch):
    """Adding layer n to a Sequential builds only layer n (loading is linear in depth)."""
    model = keras.Sequential([keras.Input((2,))] + [layers.Activation("relu")
                                                     for _ in range(300)] + [layers.Dense(1)])
    model.save(tmp_path / "deep.cnet")
    calls = []
    original = layers.Activation.compute_output_shape
    monkeypatch.setattr(layers.Activation, "compute_output_shape",
                        lambda self, shape: calls.append(1) or original(self, shape))
    loaded = keras.load_model(tmp_path / "deep.cnet")
    assert len(loaded.layers) == 301
    assert len(calls) <= 2 * 300
