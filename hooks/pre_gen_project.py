"""Reject answers that would break the project later, before anything is written.

The rules are in hooks/validation.py; cookiecutter renders their verdict into
this script through the `answer_errors` filter.
"""

import sys

PROBLEMS: list[str] = {{ cookiecutter | answer_errors | jsonify }}

for problem in PROBLEMS:
    print(f"ERROR: {problem}", file=sys.stderr)
sys.exit(1 if PROBLEMS else 0)
