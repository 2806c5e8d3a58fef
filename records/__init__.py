"""What the suite writes and reads: atomic writes (``io``), the cell folder layout (``layout``), the versioned
schema of every record (``schema``) and the command-line conventions every command shares (``cli``).

Imports pandas and the standard library only, so that both the experiment layer (``benchmarks``) and the
analysis (``analysis``) can use it without importing each other.
"""
