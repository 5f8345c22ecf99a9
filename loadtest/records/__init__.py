"""The record contract (schema), crash-safe writers and readers into pandas."""
