"""Drop what the chosen options don't need, then say what to run next."""

from pathlib import Path

UNUSED = {
    "Proprietary": ["LICENSE"],  # no open-source licence text for a proprietary project
}

for name in UNUSED.get("{{ cookiecutter.license }}", []):
    Path(name).unlink()

PROJECT_NAME = {{ cookiecutter.project_name | py_str }}

print(
    PROJECT_NAME
    + """ is ready in ./{{ cookiecutter.project_slug }}. Next:

  cd {{ cookiecutter.project_slug }}
  git init -b main && git add -A && git commit -m "Start from mlops-docker"
  nox                  # lint, typecheck, tests, train (no Docker needed)
  nox -s build smoke   # build the images, run the serving image as the pod will
  nox -s serve         # serve build/model on http://127.0.0.1:8000
"""
)
