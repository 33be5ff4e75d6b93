"""Unit tests of the template's proof (proof/), run in the unit tier."""
