"""The layer atlas: the studies it needs (found or run) and their numbers per probe point."""
