"""callrec-desktop: a call recorder that never records a card number and never loses a call."""

__version__ = "0.1.0"
