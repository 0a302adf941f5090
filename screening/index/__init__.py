"""The in-memory screening index: what ScreenCall answers from. No I/O."""
