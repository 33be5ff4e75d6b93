"""The project's tests; folders mirror src/ and tools/."""
