"""Action backends: the only code that changes the world, each behind one Protocol."""
