"""Hidden checks for the assignment (filled in by its author)."""

__all__: list[str] = []
