"""Refuse bad answers again: `cookiecutter --replay` skips cookiecutter.json's check.

The rules are in hooks/validation.py. Rendering this script runs them (the
`refuse_bad_answers` filter), so a bad answer stops cookiecutter with one line
before the script runs; when they pass, it renders to nothing and does nothing.
"""
# {{ cookiecutter | refuse_bad_answers }}
