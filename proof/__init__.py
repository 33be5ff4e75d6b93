"""The template's own proof: drives a baked project from outside; never generated."""
