"""newsmon: watch news feeds, classify topic and stance, mail a weekly digest."""

__version__ = "0.1.0"
