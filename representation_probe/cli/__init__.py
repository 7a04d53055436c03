"""The command line's side of the library: composed configs turned into the library's arguments."""
