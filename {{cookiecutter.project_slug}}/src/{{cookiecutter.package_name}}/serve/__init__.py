"""The HTTP server: loads the exported model once and answers predictions over FastAPI."""
