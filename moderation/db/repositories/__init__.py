"""One module per aggregate; functions take a Session, return frozen dataclasses, never commit."""
