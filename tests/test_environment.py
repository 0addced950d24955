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
