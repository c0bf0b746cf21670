import os
import shutil
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# oneDNN picks matmul kernels by batch size, so [T*B]-row and [B]-row matmuls round
# differently (~3e-6 relative). The equivalence tests (online vs clip, layerwise vs
# framewise) measure the algorithms, so they run on TF's deterministic Eigen kernels;
# tests/test_tf_integration.py checks the reference model with oneDNN on as well.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
# The tests compile many tiny XLA programs (every JAX op and jitted step, TF's jit_compile
# runs) and run each a few times: XLA's backend optimisation costs more than it saves
# there (the JAX subprocess tests take ~35 % less time). Inherited by every subprocess.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0 "
                      "--xla_llvm_disable_expensive_passes=true")
# The JAX subprocesses (the core tests under JAX, the JAX programs) compile many of the same
# small programs: one persistent compilation cache for the session (~10 % off those tests),
# made by the controller and inherited by the xdist workers and their subprocesses (an entry
# read while another process writes it is only compiled again). Removed at the end.
_OWN_JAX_CACHE = None              # set in the process that made it (the controller)
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _OWN_JAX_CACHE = tempfile.mkdtemp(prefix="rstg-tf-jax-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _OWN_JAX_CACHE
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def pytest_sessionfinish(session, exitstatus):
    if _OWN_JAX_CACHE:                 # workers and subprocesses inherit the directory
        shutil.rmtree(_OWN_JAX_CACHE, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``heavy`` first: pytest-xdist hands tests out in this order, so the
    suite does not end with one worker on a long test while the other waits."""
    items.sort(key=lambda item: item.get_closest_marker("heavy") is None)
