"""Train, track in MLflow and serve a scikit-learn model: see README.md."""

import os

# Quiet by default; a variable already set wins. onnxruntime (serving, and training's ONNX
# check) writes a device id and an events database under $HOME/.cache/Microsoft when it is
# imported, and warns where it cannot (a read-only root): only this variable, set before the
# import, stops that (serve/onnx_runtime.py also turns its events off). MLflow writes an
# installation id under $HOME/.config/mlflow and sends usage events from training.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
