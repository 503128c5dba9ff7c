"""Pure domain: models, events and policy rules. No I/O, no framework imports."""
