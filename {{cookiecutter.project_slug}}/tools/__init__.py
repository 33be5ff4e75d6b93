"""Operations code: programs the nox sessions run (kept out of the images)."""
