"""Tests that run the built images in Docker."""
