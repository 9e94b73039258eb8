"""alloysync: run jobs marked in Alloy on a Dramatiq worker pool and write their outcome back."""

__version__ = "0.1.0"
