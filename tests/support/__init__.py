"""Code used only by tests: audits, fakes and fixtures shared across test folders."""
