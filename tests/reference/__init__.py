"""Test-only re-statements of official architectures, used as references for converters."""
