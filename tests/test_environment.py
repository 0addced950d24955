"""The stack holds together the way graft needs it to."""
import subprocess
import sys


def _py(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin"}, timeout=300)


def test_importing_graft_gives_keras_2_under_tf_keras():
    r = _py("import graft.trainer, tensorflow as tf, tf_keras; "
            "print(tf_keras.__version__, tf.keras.layers.Dense is tf_keras.layers.Dense)")
    assert r.returncode == 0, r.stderr
    version, same = r.stdout.split()
    assert version.startswith("2.16") and same == "True"


def test_without_graft_tf_keras_would_be_keras_3():
    # Proves the test above can fail: the setting is what makes the difference.
    r = _py("import tensorflow as tf, tf_keras; "
            "print(tf.keras.layers.Dense is tf_keras.layers.Dense)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[-1] == "False"


def test_the_two_pin_fixes_hold():
    # tensorflow_hub 0.16.1 imports on TF 2.16; tfx_bsl's undeclared `import dill` is satisfied.
    r = _py("import graft, tensorflow_hub, dill, tfx_bsl.beam, apache_beam, tfx; "
            "print(tensorflow_hub.__version__, apache_beam.__version__, tfx.__version__)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0.16.1", "2.61.0", "1.16.0"]


def test_importing_graft_first_gives_numpy_and_scipy_avx_kernels():
    # numpy's and scipy's OpenBLAS fall back to Prescott (no AVX) on Intel models they do
    # not know; graft picks the kernels by the CPU's features before either loads.
    import graft
    expected = graft._openblas_coretype()
    if not expected:
        import pytest
        pytest.skip("this CPU has no AVX2: OpenBLAS's own choice stands")
    r = _py("import graft, numpy, scipy.linalg, threadpoolctl; "
            "print(' '.join(sorted({i['architecture'] for i in threadpoolctl.threadpool_info()"
            " if i['internal_api'] == 'openblas'})))")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [expected]
    # A value the user sets wins.
    r = subprocess.run([sys.executable, "-c", "import graft, os; print(os.environ['OPENBLAS_CORETYPE'])"],
                       capture_output=True, text=True, timeout=300,
                       env={"PATH": "/usr/bin:/bin", "OPENBLAS_CORETYPE": "Haswell"})
    assert r.stdout.strip() == "Haswell", r.stderr
