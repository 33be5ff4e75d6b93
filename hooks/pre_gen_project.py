"""Reject answers that would break the project later, before anything is written.

The rules are in hooks/validation.py; cookiecutter renders their verdict into
this script through the `answer_errors` filter. Only the first problem is shown:
later ones are mostly echoes of it (a bad slug makes a bad package name too).
"""

import sys

PROBLEMS: list[str] = {{ cookiecutter | answer_errors | jsonify }}

if PROBLEMS:
    print(f"ERROR: {PROBLEMS[0]}", file=sys.stderr)
    sys.exit(1)
