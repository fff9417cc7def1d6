"""placeholder: filled in by its issue."""


def add_parsers(sub) -> None:
    pass
