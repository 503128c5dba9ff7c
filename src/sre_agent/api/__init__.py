"""HTTP edge: thin routers that parse, call the core, and render."""
