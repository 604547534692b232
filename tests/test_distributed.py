"""convnet.distributed on 2 MPI ranks (``mpiexec -n 2 python -m mpi4py tests/mpi_job.py``)
against the same training in this process at the global batch size: the equivalence the
issue defines (2 ranks x batch 32 == 1 process x batch 64), its negative controls, ragged
data, files and output written once, and a failing rank ending the job."""
import json
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import convnet as keras
import mpi_job

HERE = os.path.dirname(os.path.abspath(__file__))
# The checkout (or installation) this process imports convnet from, for the ranks too.
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(keras.__file__)))


def _mpiexec():
    """The mpiexec of this Python's MPI (pip's mpich puts it beside the interpreter)."""
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return beside if os.access(beside, os.X_OK) else shutil.which("mpiexec")


MPIEXEC = _mpiexec()
needs_mpiexec = pytest.mark.skipif(MPIEXEC is None,
                                   reason="no mpiexec (pip install \"convnet[mpi]\")")


def launch(script, *args, timeout=120, cwd=None):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [PACKAGE_ROOT, os.environ.get("PYTHONPATH")])))
    started = time.perf_counter()
    result = subprocess.run([MPIEXEC, "-n", "2", sys.executable, "-m", "mpi4py", script,
                             *map(str, args)], capture_output=True, text=True, env=env,
                            timeout=timeout, cwd=cwd)
    return result, time.perf_counter() - started


def run_job(scenario, out):
    result, _ = launch(os.path.join(HERE, "mpi_job.py"), scenario, out)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def equivalence_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("equivalence")
    run_job("equivalence", out)
    return out


def load(out, name, rank):
    with np.load(os.path.join(out, f"{name}-rank{rank}.npz")) as f:
        weights = [f[f"arr_{i}"] for i in range(sum(k.startswith("arr_") for k in f.files))]
        history = {k[len("history_"):]: f[k] for k in f.files if k.startswith("history_")}
        return weights, history, f["evaluation"]


def one_process(case, epochs=(mpi_job.EPOCHS,)):
    """The case trained here, without MPI, at the global batch (2 x 32)."""
    make_optimizer, samples, split, _, _ = mpi_job.CASES[case]
    model = mpi_job.build(make_optimizer())
    for count in epochs:
        history, evaluation = mpi_job.train(model, samples, split, 2 * mpi_job.RANK_BATCH,
                                            epochs=count)
    return model.get_weights(), history, evaluation


def max_difference(a, b):
    assert [w.shape for w in a] == [w.shape for w in b]
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


@needs_mpiexec
@pytest.mark.parametrize("case", ["sgd", "momentum", "adam", "ragged", "tail"])
def test_two_ranks_train_as_one_process_at_the_global_batch(equivalence_runs, case):
    reference, history, evaluation = one_process(case)
    weights, rank_history, rank_evaluation = load(equivalence_runs, f"equivalence-{case}", 0)
    other, _, _ = load(equivalence_runs, f"equivalence-{case}", 1)
    assert max_difference(weights, reference) < 1e-5
    assert max_difference(other, weights) == 0  # the ranks apply one update to one state
    # evaluate's sums over both ranks give the one-process loss and accuracy
    np.testing.assert_allclose(rank_evaluation, evaluation, rtol=1e-5, atol=1e-6)
    if case != "tail":  # there the one-sample last batch counts in both ranks' metrics
        assert rank_history.keys() == history.keys()
        for key in history:
            np.testing.assert_allclose(rank_history[key], history[key], rtol=1e-5, atol=1e-6)


@needs_mpiexec
def test_generators_of_each_rank_train_as_their_union_in_one_process(equivalence_runs):
    first, second = mpi_job.rank_batches(0), mpi_job.rank_batches(1)
    union = [tuple(np.concatenate(parts) for parts in zip(a, b))
             for a, b in zip(first, second)]
    model = mpi_job.build(keras.optimizers.SGD(0.1, momentum=0.5))
    history, evaluation = mpi_job.train_on_batches(model, union, first + second)
    for rank in (0, 1):
        weights, rank_history, rank_evaluation = load(equivalence_runs,
                                                      "equivalence-generator", rank)
        assert max_difference(weights, model.get_weights()) < 1e-5
        np.testing.assert_allclose(rank_history["loss"], history["loss"], rtol=1e-5)
        np.testing.assert_allclose(rank_evaluation, evaluation, rtol=1e-5)


@needs_mpiexec
@pytest.mark.parametrize("case", ["no_broadcast", "no_averaging"])
def test_without_broadcast_or_averaging_the_equivalence_breaks(equivalence_runs, case):
    reference, _, _ = one_process(case)
    weights, _, _ = load(equivalence_runs, f"equivalence-{case}", 0)
    assert max_difference(weights, reference) > 1e-3


@needs_mpiexec
def test_resuming_broadcasts_the_optimizer_state(equivalence_runs):
    # rank 1 lost its Adam moments and step count and moved its weights between the fits
    reference, _, _ = one_process("adam", epochs=(1, 1))
    for rank in (0, 1):
        weights, _, _ = load(equivalence_runs, "resume-adam", rank)
        assert max_difference(weights, reference) < 1e-5


@needs_mpiexec
def test_collectives_threads_warmup_and_metric_average(tmp_path):
    run_job("api", tmp_path)
    ranks = [json.loads((tmp_path / f"api-rank{r}.json").read_text()) for r in (0, 1)]
    for rank, results in enumerate(ranks):
        assert results["local"] == [rank, 2]
        assert results["average"] == [1.5, 3.0] and results["sum"] == 3
        assert results["max"] == [1, 0] and results["broadcast"] == [10, 11, 12]
        assert "op must be one of" in results["error_op"] and "'mean'" in results["error_op"]
        assert results["error_root"].startswith("ValueError") and "[0, 2)" in results[
            "error_root"]
        assert results["error_strings"].startswith("TypeError: convnet.distributed.allreduce")
        before, after = json.loads((tmp_path / f"threads-rank{rank}.json").read_text())
        assert after == max(1, min(before, os.cpu_count() // 2))
        # Horovod's ramp: initial_lr / size * (1 + (epoch + (batch + 1) / steps) * (size - 1)
        # / warmup_epochs), 4 steps an epoch, warmup over 2 epochs; then initial_lr stays.
        steps = 256 // 64
        ramp = [0.1 / 2 * (1 + (e + (b + 1) / steps) / 2) for e in range(2) for b in range(steps)]
        np.testing.assert_allclose(results["lr"], ramp + [0.1] * steps, rtol=1e-12)
        # momentum corrected by new_lr / old_lr during each warmup batch, then restored
        previous = [0.1] + ramp[:-1]
        np.testing.assert_allclose(results["momentum"], [0.9 * new / old for new, old in
                                                         zip(ramp, previous)] + [0.9] * steps)
        assert results["momentum_after"] == [0.9] * 3 * steps
        assert results["history"]["lr"] == pytest.approx([ramp[steps - 1], 0.1, 0.1])
        assert results["history"]["rank"] == [0.5] * 3  # MetricAverageCallback
    assert ranks[0]["history"] == ranks[1]["history"]


@needs_mpiexec
def test_ragged_data_finishes_with_one_checkpoint_and_one_progress_bar(tmp_path):
    result = run_job("ragged_checkpoint", tmp_path)
    out = result.stdout
    assert out.count("Epoch 1/2") == 1 and out.count("Epoch 2/2") == 1
    assert out.count("saving model to") == 2
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-1.keras", "checkpoint-2.keras"]
    # Found anywhere: both ranks write to one pipe, so their lines can run together
    # ("... sum 1.791483rank 0 finished ...").
    sums = dict(re.findall(r"rank (\d) finished with weight sum (-?[0-9]+\.[0-9]{6})", out))
    assert sums.keys() == {"0", "1"} and sums["0"] == sums["1"]


@needs_mpiexec
def test_an_exception_on_one_rank_ends_the_job(tmp_path):
    # A hang would last until the timeout; the bound leaves room for two interpreters
    # importing NumPy, SciPy and MPI on a loaded 2-core machine (a quiet one takes ~3 s).
    result, seconds = launch(os.path.join(HERE, "mpi_job.py"), "crash", tmp_path, timeout=120)
    assert result.returncode != 0
    assert "rank 1 fails on purpose" in result.stderr
    assert seconds < 60, f"the job took {seconds:.1f} s to end"


@needs_mpiexec
def test_distributed_example(tmp_path):
    example = os.path.join(HERE, os.pardir, "examples", "fashion_mnist_distributed.py")
    result, _ = launch(os.path.abspath(example), "--fast", "--out", tmp_path, timeout=300,
                       cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert out.count("Total params: 34,826") == 1 and out.count("Epoch 1/1") == 1
    assert out.count("Test accuracy: ") == 1
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-1.keras",
                                           "fashion_mnist_distributed.keras"]
    keras.load_model(str(tmp_path / "fashion_mnist_distributed.keras"))  # no MPI needed


def test_one_process_without_mpiexec(tmp_path):
    """The core never imports mpi4py; init() alone makes a job of one rank, where the
    distributed optimizer is the plain one."""
    code = """
import sys
import numpy as np
import convnet as keras
import convnet.distributed as hvd
assert "mpi4py" not in sys.modules
try:
    hvd.rank()
except ValueError as error:
    assert "call convnet.distributed.init() first" in str(error), error
else:
    raise AssertionError("rank() before init()")
if "--init" in sys.argv:
    hvd.init()
    assert (hvd.rank(), hvd.size(), hvd.local_rank(), hvd.local_size()) == (0, 1, 0, 1)
    assert hvd.allreduce(3) == 3.0 and hvd.broadcast([1, 2]).tolist() == [1, 2]
    optimizer = hvd.DistributedOptimizer("adam")
    config, plain_config = optimizer.get_config(), keras.optimizers.Adam().get_config()
    config.pop("name"), plain_config.pop("name")   # names are numbered: adam, adam_1, ...
    assert type(optimizer).__name__ == "Adam" and config == plain_config
    variable, grad = keras.Variable(np.ones(3, np.float32)), np.full(3, 0.5, np.float32)
    plain = keras.Variable(np.ones(3, np.float32))
    optimizer.apply([grad], [variable])
    keras.optimizers.Adam().apply([grad], [plain])
    assert np.array_equal(variable.numpy(), plain.numpy())
print("ok")
"""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [PACKAGE_ROOT, os.environ.get("PYTHONPATH")])))
    flags = ["--init"] if _mpi4py_installed() else []
    # cwd: a source checkout's convnet/ (without compiled kernels) must not shadow the
    # package this process imported
    result = subprocess.run([sys.executable, "-c", code, *flags], capture_output=True,
                            text=True, env=env, timeout=120, cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]


def _mpi4py_installed():
    import importlib.util
    return importlib.util.find_spec("mpi4py") is not None
