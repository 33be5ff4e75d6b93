"""Train, track in MLflow and serve a scikit-learn model: see README.md."""
