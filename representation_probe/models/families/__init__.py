"""The model families, one module each; `models.family.get_family` imports them all on first use."""
