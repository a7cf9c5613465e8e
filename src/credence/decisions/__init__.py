"""Decisions (feature): purpose-bound answers to relying parties, with specific reasons
and how to dispute; the inquiry on the subject's file; warnings before a restriction."""
