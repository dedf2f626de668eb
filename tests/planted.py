"""A hostile pickle for trust tests: unpickling it creates a marker file (any code a planted file could run)."""


class Planted:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")
